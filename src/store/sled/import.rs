//! Batch writes in sled: the whole batch in one transaction (see
//! `crate::store::import` for what a batch means).

use super::mfa::{tx_restore_group_policy, tx_restore_second_factors, MFA_TREE_COUNT};
use super::{
    abort, email_key, keys, name_key, retrying, setting_key, settle, tx_allocate,
    tx_check_and_bump_epoch, tx_counter, tx_group, tx_put_group, tx_put_user, tx_reindex_email,
    tx_user, GroupId, Member, Result, SledStore, StoreError, User, UserId, EMPTY, FIRST_GID_NUMBER,
    FIRST_UID_NUMBER, META_NEXT_GID, META_NEXT_UID, SETTING_PREFIX,
};
use super::{backend, now, TxResult};
use sled::transaction::{Transactional, TransactionalTree};
use sled::Tree;

use crate::store::import::{Batch, BatchMember, BatchMode, BatchReport};
use std::collections::{BTreeMap, HashMap, HashSet};

fn conflict(msg: String) -> sled::transaction::ConflictableTransactionError<super::TxAbort> {
    abort(StoreError::AlreadyExists(format!("import conflict: {msg}")))
}

/// The fields a merge may change on an existing user, compared to decide
/// between "updated" and "unchanged".
fn merged_user(existing: &User, incoming: &User) -> User {
    let mut u = existing.clone();
    if incoming.full_name.is_some() {
        u.full_name.clone_from(&incoming.full_name);
    }
    if incoming.email.is_some() {
        u.email.clone_from(&incoming.email);
    }
    if incoming.gid_number != 0 {
        u.gid_number = incoming.gid_number;
    }
    for (k, v) in &incoming.attrs {
        u.attrs.insert(k.clone(), v.clone());
    }
    u
}

impl SledStore {
    /// Every setting, ordered by key.
    pub fn settings(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for entry in self.t.meta.scan_prefix(SETTING_PREFIX.as_bytes()) {
            let (k, v) = entry.map_err(backend)?;
            let key = String::from_utf8(k[SETTING_PREFIX.len()..].to_vec())
                .map_err(|_| StoreError::Backend("corrupt setting key".into()))?;
            let value = String::from_utf8(v.to_vec())
                .map_err(|_| StoreError::Backend(format!("corrupt setting {key:?}")))?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The allocators: (next uidNumber, next gidNumber).
    pub fn counters(&self) -> Result<(u32, u32)> {
        let get = |key: &[u8], default: u32| -> Result<u32> {
            match self.t.meta.get(key).map_err(backend)? {
                Some(b) => keys::number(&b),
                None => Ok(default),
            }
        };
        Ok((
            get(META_NEXT_UID, FIRST_UID_NUMBER)?,
            get(META_NEXT_GID, FIRST_GID_NUMBER)?,
        ))
    }

    /// Replaces the password hash `old` with `new` if it is still `old`,
    /// without touching `pwd_changed` or `cred_generation`: the password
    /// is the same, only its hash is upgraded (legacy → argon2id after a
    /// successful bind). `Ok(false)` if the hash changed meanwhile.
    pub fn rehash_password(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        self.committed(self.rehash_password_uncommitted(id, old, new))
    }

    fn rehash_password_uncommitted(&self, id: UserId, old: &str, new: &str) -> Result<bool> {
        if new.is_empty() {
            return Err(StoreError::Invalid("the password hash is empty".into()));
        }
        let swapped = self
            .t
            .credentials
            .compare_and_swap(
                keys::user_key(id),
                Some(old.as_bytes()),
                Some(new.as_bytes()),
            )
            .map_err(backend)?;
        Ok(swapped.is_ok())
    }

    /// Group → child-group edges by lowercase name, existing ones plus
    /// those the batch adds; refuses a batch that would close a cycle.
    fn check_batch_cycles(&self, batch: &Batch) -> Result<()> {
        let mut edges: HashMap<String, HashSet<String>> = HashMap::new();
        let mut names: HashMap<GroupId, String> = HashMap::new();
        for g in self.groups()? {
            names.insert(g.id, g.name.to_ascii_lowercase());
        }
        for entry in self.t.members.iter() {
            let (key, _) = entry.map_err(backend)?;
            if let Member::Group(child) = keys::parse_members_key(&key)? {
                let parent = GroupId(keys::uuid(&key[..16])?);
                if let (Some(p), Some(c)) = (names.get(&parent), names.get(&child)) {
                    edges.entry(p.clone()).or_default().insert(c.clone());
                }
            }
        }
        for (group, member) in &batch.memberships {
            if let BatchMember::Group(child) = member {
                edges
                    .entry(group.to_ascii_lowercase())
                    .or_default()
                    .insert(child.to_ascii_lowercase());
            }
        }
        // Depth-first search with colours; iterative to bound the stack.
        let mut state: HashMap<&str, u8> = HashMap::new();
        for start in edges.keys() {
            if state.contains_key(start.as_str()) {
                continue;
            }
            let mut stack: Vec<(&str, Vec<&str>)> = vec![(
                start.as_str(),
                edges
                    .get(start)
                    .map(|s| s.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
            )];
            state.insert(start.as_str(), 1);
            while let Some((node, children)) = stack.last_mut() {
                let node = *node;
                match children.pop() {
                    Some(c) => match state.get(c) {
                        Some(1) => {
                            return Err(StoreError::Invalid(format!(
                                "import conflict: adding group {c} under {node} would create a \
                                 cycle of nested groups"
                            )))
                        }
                        Some(_) => {}
                        None => {
                            state.insert(c, 1);
                            let next = edges
                                .get(c)
                                .map(|s| s.iter().map(String::as_str).collect())
                                .unwrap_or_default();
                            stack.push((c, next));
                        }
                    },
                    None => {
                        state.insert(node, 2);
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes a whole batch in one transaction over every tree involved.
    /// Either all of it lands or, on any conflict or failure, none of it.
    pub fn apply_batch(&self, batch: &Batch) -> Result<BatchReport> {
        self.committed(self.apply_batch_uncommitted(batch))
    }

    fn apply_batch_uncommitted(&self, batch: &Batch) -> Result<BatchReport> {
        crate::store::Store::check_batch(batch)?;
        let t = &self.t;
        let mut trees: Vec<&Tree> = vec![
            &t.users,
            &t.groups,
            &t.credentials,
            &t.idx_username,
            &t.idx_email,
            &t.idx_uid,
            &t.idx_group_name,
            &t.idx_gid,
            &t.members,
            &t.member_of,
            &t.meta,
        ];
        // The MFA trees join only a batch that writes to them (a restore),
        // so imports and LDAP adds do not contend with binds for them.
        let with_mfa = !batch.second_factors.is_empty() || !batch.group_policies.is_empty();
        if with_mfa {
            trees.extend(self.mfa_trees());
        }
        retrying("importing", || {
            let seen = self.stored_epoch()?;
            self.check_batch_cycles(batch)?;
            settle(
                &self.t,
                trees[..].transaction(|views: &Vec<TransactionalTree>| {
                    self.tx_batch(batch, seen, views)
                }),
            )
        })
    }

    fn tx_batch(
        &self,
        batch: &Batch,
        seen: u64,
        views: &[TransactionalTree],
    ) -> TxResult<BatchReport> {
        let [users, groups, credentials, idx_username, idx_email, idx_uid, idx_group_name, idx_gid, members, member_of, meta, mfa_views @ ..] =
            views
        else {
            return Err(abort(StoreError::Backend(
                "import: wrong number of trees".into(),
            )));
        };
        let with_mfa = !batch.second_factors.is_empty() || !batch.group_policies.is_empty();
        if with_mfa && mfa_views.len() != MFA_TREE_COUNT {
            return Err(abort(StoreError::Backend(
                "import: wrong number of MFA trees".into(),
            )));
        }
        let mut report = BatchReport::default();
        let at = now();
        let restore = batch.mode == BatchMode::Restore;
        let mut user_ids: BTreeMap<Vec<u8>, UserId> = BTreeMap::new();
        let mut group_ids: BTreeMap<Vec<u8>, GroupId> = BTreeMap::new();
        let mut existing_groups: HashSet<GroupId> = HashSet::new();

        // Counters move past every imported number first, so allocation
        // below never hands out a number the batch also uses.
        let max_uid = batch
            .users
            .iter()
            .filter(|u| !u.allocate_uid)
            .map(|u| u.user.uid_number)
            .max();
        let max_gid = batch
            .groups
            .iter()
            .filter(|g| !g.allocate_gid)
            .map(|g| g.group.gid_number)
            .max();
        let mut next_uid = tx_counter(meta, META_NEXT_UID, FIRST_UID_NUMBER)?;
        if let Some(m) = max_uid {
            next_uid = next_uid.max(m.saturating_add(1));
        }
        if let Some(n) = batch.next_uid {
            next_uid = next_uid.max(n);
        }
        meta.insert(META_NEXT_UID, &keys::number_key(next_uid))?;
        let mut next_gid = tx_counter(meta, META_NEXT_GID, FIRST_GID_NUMBER)?;
        if let Some(m) = max_gid {
            next_gid = next_gid.max(m.saturating_add(1));
        }
        if let Some(n) = batch.next_gid {
            next_gid = next_gid.max(n);
        }
        meta.insert(META_NEXT_GID, &keys::number_key(next_gid))?;

        // --- groups (first: their numbers bound user allocation too) ---
        let mut pending_groups = Vec::new();
        for bg in &batch.groups {
            let g = &bg.group;
            let key = name_key(&g.name);
            if group_ids.contains_key(&key) {
                return Err(conflict(format!("group {} appears twice", g.name)));
            }
            if let Some(id_bytes) = idx_group_name.get(&*key)? {
                let id = GroupId(keys::uuid(&id_bytes).map_err(abort)?);
                let ex = tx_group(groups, id)?.ok_or_else(|| {
                    abort(StoreError::Backend(format!(
                        "group index names missing {id}"
                    )))
                })?;
                if restore && ex.id != g.id {
                    return Err(conflict(format!(
                        "group {} already exists with another id; restore into a fresh data \
                         directory",
                        g.name
                    )));
                }
                if !bg.allocate_gid && ex.gid_number != g.gid_number {
                    return Err(conflict(format!(
                        "group {} exists with gidNumber {}, the import has {}",
                        g.name, ex.gid_number, g.gid_number
                    )));
                }
                let mut after = if restore { g.clone() } else { ex.clone() };
                if !restore && g.description.is_some() {
                    after.description.clone_from(&g.description);
                }
                if after != ex {
                    if !restore {
                        after.modified = at;
                    }
                    tx_put_group(groups, &after)?;
                    report.groups_updated.push(g.name.clone());
                } else {
                    report.groups_unchanged.push(g.name.clone());
                }
                existing_groups.insert(id);
                group_ids.insert(key, id);
                continue;
            }
            if groups.get(keys::group_key(g.id))?.is_some() {
                return Err(conflict(format!(
                    "group id {} of {} is already used by another group",
                    g.id, g.name
                )));
            }
            if !bg.allocate_gid {
                if let Some(owner) = idx_gid.get(keys::number_key(g.gid_number))? {
                    let owner = GroupId(keys::uuid(&owner).map_err(abort)?);
                    let owner = tx_group(groups, owner)?.map_or_else(String::new, |o| o.name);
                    return Err(conflict(format!(
                        "gidNumber {} of group {} already belongs to group {owner}",
                        g.gid_number, g.name
                    )));
                }
            }
            group_ids.insert(key, g.id);
            pending_groups.push(bg);
        }
        for bg in pending_groups {
            let mut g = bg.group.clone();
            if bg.allocate_gid {
                g.gid_number = tx_allocate(
                    meta,
                    META_NEXT_GID,
                    FIRST_GID_NUMBER,
                    idx_gid,
                    idx_uid,
                    "gid",
                )?;
            }
            tx_put_group(groups, &g)?;
            let id_bytes = keys::group_key(g.id);
            idx_group_name.insert(name_key(&g.name), &id_bytes)?;
            idx_gid.insert(&keys::number_key(g.gid_number), &id_bytes)?;
            report.groups_created.push(g.name.clone());
        }

        // --- users ---
        let mut pending_users = Vec::new();
        for bu in &batch.users {
            let u = &bu.user;
            let key = name_key(&u.username);
            if user_ids.contains_key(&key) {
                return Err(conflict(format!("user {} appears twice", u.username)));
            }
            if let Some(id_bytes) = idx_username.get(&*key)? {
                let id = UserId(keys::uuid(&id_bytes).map_err(abort)?);
                let ex = tx_user(users, id)?.ok_or_else(|| {
                    abort(StoreError::Backend(format!(
                        "user index names missing {id}"
                    )))
                })?;
                if restore && ex.id != u.id {
                    return Err(conflict(format!(
                        "user {} already exists with another id; restore into a fresh data \
                         directory",
                        u.username
                    )));
                }
                if !bu.allocate_uid && ex.uid_number != u.uid_number {
                    return Err(conflict(format!(
                        "user {} exists with uidNumber {}, the import has {}",
                        u.username, ex.uid_number, u.uid_number
                    )));
                }
                let mut after = if restore {
                    u.clone()
                } else {
                    merged_user(&ex, u)
                };
                tx_reindex_email(idx_email, &ex, &after, |after| {
                    conflict(format!(
                        "email {} of user {} already belongs to another user",
                        after.email.as_deref().unwrap_or_default(),
                        after.username
                    ))
                })?;
                let has_password = credentials.get(keys::user_key(id))?.is_some();
                if let Some(hash) = &bu.password_hash {
                    let current = credentials.get(keys::user_key(id))?;
                    if restore || !has_password {
                        if current.as_deref() != Some(hash.as_bytes()) {
                            credentials.insert(&keys::user_key(id), hash.as_bytes())?;
                            if !restore {
                                after.pwd_changed = Some(at);
                                after.cred_generation = after.cred_generation.wrapping_add(1);
                            }
                            report.passwords_set.push(u.username.clone());
                        }
                    } else if current.as_deref() != Some(hash.as_bytes()) {
                        report.passwords_kept.push(u.username.clone());
                    }
                } else if restore && has_password {
                    credentials.remove(&keys::user_key(id))?;
                }
                if after != ex {
                    if !restore {
                        after.modified = at;
                    }
                    tx_put_user(users, &after)?;
                    report.users_updated.push(u.username.clone());
                } else {
                    report.users_unchanged.push(u.username.clone());
                }
                user_ids.insert(key, id);
                continue;
            }
            if users.get(keys::user_key(u.id))?.is_some() {
                return Err(conflict(format!(
                    "user id {} of {} is already used by another user",
                    u.id, u.username
                )));
            }
            if !bu.allocate_uid {
                if let Some(owner) = idx_uid.get(keys::number_key(u.uid_number))? {
                    let owner = UserId(keys::uuid(&owner).map_err(abort)?);
                    let owner = tx_user(users, owner)?.map_or_else(String::new, |o| o.username);
                    return Err(conflict(format!(
                        "uidNumber {} of user {} already belongs to user {owner}",
                        u.uid_number, u.username
                    )));
                }
            }
            if let Some(email) = &u.email {
                if idx_email.get(email_key(email))?.is_some() {
                    return Err(conflict(format!(
                        "email {email} of user {} already belongs to another user",
                        u.username
                    )));
                }
            }
            user_ids.insert(key, u.id);
            pending_users.push(bu);
        }
        for bu in pending_users {
            let mut u = bu.user.clone();
            if bu.allocate_uid {
                u.uid_number = tx_allocate(
                    meta,
                    META_NEXT_UID,
                    FIRST_UID_NUMBER,
                    idx_uid,
                    idx_gid,
                    "uid",
                )?;
                if u.gid_number == 0 {
                    u.gid_number = u.uid_number;
                }
            }
            let id_bytes = keys::user_key(u.id);
            if let Some(hash) = &bu.password_hash {
                credentials.insert(&id_bytes, hash.as_bytes())?;
                if !restore {
                    u.pwd_changed = Some(u.pwd_changed.unwrap_or(at));
                }
                report.passwords_set.push(u.username.clone());
            }
            tx_put_user(users, &u)?;
            idx_username.insert(name_key(&u.username), &id_bytes)?;
            if let Some(email) = &u.email {
                idx_email.insert(email_key(email), &id_bytes)?;
            }
            idx_uid.insert(&keys::number_key(u.uid_number), &id_bytes)?;
            report.users_created.push(u.username.clone());
        }

        // --- memberships ---
        let lookup_user = |name: &str| -> TxResult<Option<UserId>> {
            let key = name_key(name);
            if let Some(id) = user_ids.get(&key) {
                return Ok(Some(*id));
            }
            match idx_username.get(&*key)? {
                Some(b) => Ok(Some(UserId(keys::uuid(&b).map_err(abort)?))),
                None => Ok(None),
            }
        };
        let lookup_group = |name: &str| -> TxResult<Option<GroupId>> {
            let key = name_key(name);
            if let Some(id) = group_ids.get(&key) {
                return Ok(Some(*id));
            }
            match idx_group_name.get(&*key)? {
                Some(b) => Ok(Some(GroupId(keys::uuid(&b).map_err(abort)?))),
                None => Ok(None),
            }
        };
        let mut touched: HashSet<GroupId> = HashSet::new();
        for (group, member) in &batch.memberships {
            let gid = lookup_group(group)?.ok_or_else(|| {
                abort(StoreError::NotFound(format!("group {group} (member list)")))
            })?;
            let m = match member {
                BatchMember::User(n) => Member::User(
                    lookup_user(n)?
                        .ok_or_else(|| abort(StoreError::NotFound(format!("user {n}"))))?,
                ),
                BatchMember::Group(n) => Member::Group(
                    lookup_group(n)?
                        .ok_or_else(|| abort(StoreError::NotFound(format!("group {n}"))))?,
                ),
            };
            if m == Member::Group(gid) {
                return Err(conflict(format!("group {group} cannot contain itself")));
            }
            let key = keys::members_key(gid, m);
            if members.get(&key)?.is_some() {
                continue;
            }
            members.insert(key, EMPTY)?;
            member_of.insert(keys::member_of_key(m, gid), EMPTY)?;
            report.memberships_added += 1;
            if existing_groups.contains(&gid) {
                touched.insert(gid);
            }
        }
        if !restore {
            for gid in touched {
                if let Some(mut g) = tx_group(groups, gid)? {
                    g.modified = at;
                    tx_put_group(groups, &g)?;
                }
            }
        }
        // Aborts as stale if memberships changed since the cycle check.
        tx_check_and_bump_epoch(meta, Some(seen))?;

        for (k, v) in &batch.settings {
            meta.insert(setting_key(k), v.as_bytes())?;
            report.settings_set += 1;
        }

        // --- second factors and group policies ---
        for (name, factors) in &batch.second_factors {
            let user = lookup_user(name)?
                .ok_or_else(|| abort(StoreError::NotFound(format!("user {name}"))))?;
            let (d, a) = tx_restore_second_factors(mfa_views, user, factors)?;
            report.devices_restored += d;
            report.app_passwords_restored += a;
        }
        for (name, policy) in &batch.group_policies {
            let group = lookup_group(name)?
                .ok_or_else(|| abort(StoreError::NotFound(format!("group {name}"))))?;
            if tx_restore_group_policy(mfa_views, group, policy)? {
                report.group_policies_set += 1;
            }
        }
        Ok(report)
    }
}
