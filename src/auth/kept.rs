//! What a bind reads about an account, kept between binds.
//!
//! A bind by name reads the user's id from the name index, the user's
//! record, the effective policy (the global settings and the policies of
//! the user's groups), the confirmed devices and the password hash. On a
//! repeated bind that the bind cache answers (a web application's service
//! account binds on every request; a pooled application re-binds as each
//! user it checks) those reads were a sixth of the server's CPU.
//! [`KeptAccounts`] keeps them per name as bound.
//!
//! Never fails open: an account is kept with the store's count of
//! finished writes read before any of it was read
//! ([`Backend::finished_writes`](crate::store::Backend::finished_writes)),
//! and used only while that count has not moved. Every write (a disabled
//! account, a new password, a device enrolled or removed, a rename, a
//! setting, a group's policy, a membership) moves it once it is done, so
//! the next bind after it reads afresh. A backend without such a count
//! (PostgreSQL, written by other instances too) is read on every bind.
//! Unknown names are not kept.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::policy::{self, Effective, PolicyDefaults};
use crate::domain::mfa::Device;
use crate::store::{Result, Store, User, UserId};

/// How many names [`KeptAccounts`] keeps. An account's own bytes (name,
/// hash, devices, map slot) are some 250; its record is shared with the
/// store's record cache while that holds it, and is some 0.5 KB more when
/// the cache has let it go: 25 MiB at the very most.
const KEPT_ACCOUNTS: usize = 32_768;

/// What a bind needs to know about one account.
pub struct Account {
    pub user: Arc<User>,
    pub effective: Effective,
    /// Confirmed devices only: the others do not count for a bind.
    pub devices: Vec<Device>,
    /// The stored password hash (PHC string), if any.
    pub password_hash: Option<String>,
}

/// Names the account, never its hash.
impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("user", &self.user.id)
            .field("effective", &self.effective)
            .field("devices", &self.devices.len())
            .field("password_hash", &self.password_hash.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Account {
    /// The account bound as `username` (case-insensitive), read from the
    /// store now. `shared`: the record as the store keeps it (one id
    /// lookup more on a backend without a record cache).
    fn read(
        store: &Store,
        username: &str,
        defaults: PolicyDefaults,
        shared: bool,
    ) -> Result<Option<Account>> {
        let user = if shared {
            match store.user_id_by_name(username)? {
                Some(id) => store.user_shared(id)?,
                None => None,
            }
        } else {
            store.user_by_name(username)?.map(Arc::new)
        };
        let Some(user) = user else {
            return Ok(None);
        };
        Ok(Some(Account {
            effective: policy::effective_for(store, user.id, defaults)?,
            devices: confirmed_devices(store, user.id)?,
            password_hash: store.password_hash(user.id)?,
            user,
        }))
    }
}

/// By name as bound: the store's write count it was read after, and the
/// account.
type ByName = HashMap<Box<str>, (u64, Arc<Account>)>;

/// The user's devices that count for a bind or a sign-in: the confirmed
/// ones (a self-service enrolment confirms with a first code).
pub(super) fn confirmed_devices(store: &Store, user: UserId) -> Result<Vec<Device>> {
    Ok(store
        .devices(user)?
        .into_iter()
        .filter(|d| d.confirmed)
        .collect())
}

/// Accounts bound lately; see the module documentation.
#[derive(Default)]
pub struct KeptAccounts {
    kept: Mutex<ByName>,
}

impl KeptAccounts {
    /// The account bound as `username`, `None` when no user has that
    /// name: kept when current, else read (and kept when the store counts
    /// its writes).
    pub fn account(
        &self,
        store: &Store,
        username: &str,
        defaults: PolicyDefaults,
    ) -> Result<Option<Arc<Account>>> {
        let Some(writes) = store.finished_writes() else {
            return Ok(Account::read(store, username, defaults, false)?.map(Arc::new));
        };
        if let Some((at, account)) = self.lock().get(username) {
            if *at == writes {
                return Ok(Some(account.clone()));
            }
        }
        let Some(account) = Account::read(store, username, defaults, true)? else {
            return Ok(None);
        };
        let account = Arc::new(account);
        let mut kept = self.lock();
        if kept.len() >= KEPT_ACCOUNTS && !kept.contains_key(username) {
            kept.retain(|_, (at, _)| *at == writes);
            if kept.len() >= KEPT_ACCOUNTS {
                kept.clear();
            }
        }
        kept.insert(username.into(), (writes, account.clone()));
        Ok(Some(account))
    }

    fn lock(&self) -> MutexGuard<'_, ByName> {
        // The map holds plain values: one left by a panicking holder is fine.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mfa::SETTING_MFA_POLICY;
    use crate::store::{GroupPolicy, Member, MfaPolicy, NewUser, Store, TotpSecret};

    fn kim(store: &Store) -> crate::store::UserId {
        store
            .create_user(NewUser {
                username: "kim".into(),
                ..NewUser::default()
            })
            .expect("user")
            .id
    }

    /// Every kind of write that changes a user's policy is seen by the
    /// very next answer: a policy relaxed or tightened since is never
    /// answered from what was kept.
    #[test]
    fn kept_policies_follow_every_write_that_changes_them() {
        let store = Store::temporary().expect("store");
        let user = kim(&store);
        let kept = KeptAccounts::default();
        let d = PolicyDefaults::default();
        let now = |store: &Store| {
            kept.account(store, "kim", d)
                .expect("read")
                .expect("kim")
                .effective
                .mfa
        };
        let required = GroupPolicy {
            mfa: Some(MfaPolicy::Required),
            app_passwords: None,
        };
        assert_eq!(now(&store), MfaPolicy::IfEnrolled);
        assert_eq!(now(&store), MfaPolicy::IfEnrolled, "asked again, kept");
        // the global override
        store
            .set_setting(SETTING_MFA_POLICY, MfaPolicy::Off.as_str())
            .expect("setting");
        assert_eq!(now(&store), MfaPolicy::Off);
        store.remove_setting(SETTING_MFA_POLICY).expect("setting");
        assert_eq!(now(&store), MfaPolicy::IfEnrolled);
        // a group that demands MFA, joined through a nested group
        let outer = store.create_group("outer", None).expect("group").id;
        let inner = store.create_group("inner", None).expect("group").id;
        store.set_group_policy(outer, required).expect("policy");
        store.add_member(inner, Member::User(user)).expect("member");
        assert_eq!(now(&store), MfaPolicy::IfEnrolled);
        store
            .add_member(outer, Member::Group(inner))
            .expect("member");
        assert_eq!(now(&store), MfaPolicy::Required);
        // the group's policy relaxed, then tightened again
        store
            .set_group_policy(outer, GroupPolicy::default())
            .expect("policy");
        assert_eq!(now(&store), MfaPolicy::IfEnrolled);
        store.set_group_policy(outer, required).expect("policy");
        assert_eq!(now(&store), MfaPolicy::Required);
        // the nesting ends, then the group that demanded it goes
        store
            .remove_member(outer, Member::Group(inner))
            .expect("remove");
        assert_eq!(now(&store), MfaPolicy::IfEnrolled);
        store.add_member(outer, Member::User(user)).expect("member");
        assert_eq!(now(&store), MfaPolicy::Required);
        store.delete_group(outer).expect("delete");
        assert_eq!(now(&store), MfaPolicy::IfEnrolled);
    }

    /// The record, devices and hash a bind reads are those stored when it
    /// reads them: kept (the same account) while nothing is written, read
    /// again after each write that changes them.
    #[test]
    fn kept_accounts_follow_every_write_to_the_account() {
        let store = Store::temporary().expect("store");
        let user = kim(&store);
        let kept = KeptAccounts::default();
        let d = PolicyDefaults::default();
        let get = |name: &str| kept.account(&store, name, d).expect("read");
        let first = get("kim").expect("kim");
        assert!(first.password_hash.is_none() && first.devices.is_empty());
        assert!(
            Arc::ptr_eq(&first, &get("kim").expect("kim")),
            "nothing written: the kept account"
        );
        assert!(get("nobody").is_none());

        store
            .set_password_hash(user, "$argon2id$new")
            .expect("hash");
        let a = get("kim").expect("kim");
        assert!(!Arc::ptr_eq(&first, &a), "read again after a write");
        assert_eq!(a.password_hash.as_deref(), Some("$argon2id$new"));

        store
            .update_user(user, &|u| {
                u.disabled = true;
                Ok(())
            })
            .expect("disable");
        assert!(get("kim").expect("kim").user.disabled);

        // A pending device does not count; confirmed, it does; removed,
        // it no longer does.
        let secret = TotpSecret(vec![7; 20]);
        let device = store
            .add_pending_totp_device(user, "phone", 6, &secret)
            .expect("device");
        assert!(get("kim").expect("kim").devices.is_empty());
        store.confirm_device(user, device.id).expect("confirm");
        assert_eq!(get("kim").expect("kim").devices.len(), 1);
        store.remove_device(user, device.id).expect("remove");
        assert!(get("kim").expect("kim").devices.is_empty());

        // Renamed: the old name binds nobody, the new one the same user.
        store.rename_user(user, "kimberly").expect("rename");
        assert!(get("kim").is_none());
        assert_eq!(get("kimberly").expect("kimberly").user.id, user);
        store.delete_user(user).expect("delete");
        assert!(get("kimberly").is_none());
    }

    /// The hash never shows in `Debug`.
    #[test]
    fn an_accounts_debug_hides_its_hash() {
        let store = Store::temporary().expect("store");
        let user = kim(&store);
        store
            .set_password_hash(user, "$argon2id$secret")
            .expect("hash");
        let account = KeptAccounts::default()
            .account(&store, "kim", PolicyDefaults::default())
            .expect("read")
            .expect("kim");
        let shown = format!("{account:?}");
        assert!(!shown.contains("argon2id"), "{shown}");
    }
}
