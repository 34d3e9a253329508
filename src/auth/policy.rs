//! Bind policies: whether code-based MFA applies on LDAP (`off`,
//! `if-enrolled`, `required`) and whether app passwords are accepted.
//!
//! # Precedence
//! 1. Groups: among the user's groups (direct and nested) that set the
//!    policy explicitly, the strictest wins (`required` > `if-enrolled` >
//!    `off`; for app passwords `off` > `on`). An explicit group policy
//!    beats the global one, so a group can exempt service accounts
//!    (`off`) or demand MFA (`required`) whatever the global setting.
//! 2. Otherwise the global policy: the override set with the CLI (kept in
//!    the store) when set, else the config (`[bind] mfa`,
//!    `[bind] app_passwords`).
//!
//! Pure functions over the inputs, plus [`effective_for`], which reads
//! them from the store, and [`PolicyCache`], which keeps its answers
//! while the store has not been written.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::domain::mfa::{SETTING_APP_PASSWORDS, SETTING_MFA_POLICY};
use crate::store::{GroupPolicy, Member, MfaPolicy, Result, Store, StoreError, UserId};

/// The config's defaults for the global policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyDefaults {
    pub mfa: MfaPolicy,
    pub app_passwords: bool,
}

impl Default for PolicyDefaults {
    fn default() -> Self {
        PolicyDefaults {
            mfa: MfaPolicy::IfEnrolled,
            app_passwords: true,
        }
    }
}

/// The policies that apply to one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub mfa: MfaPolicy,
    pub app_passwords: bool,
}

/// What a password bind must look like for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRule {
    /// The whole bind password is the password (semicolons included).
    WholePassword,
    /// `<password>;<code>`, split at the last `;`.
    PasswordAndCode,
    /// Refused: MFA is required and the user has no device.
    NotEnrolled,
}

/// How a password bind is read, given the policy and whether the user has
/// a confirmed device usable over LDAP.
pub fn code_rule(policy: MfaPolicy, has_device: bool) -> CodeRule {
    match (policy, has_device) {
        (MfaPolicy::Off, _) => CodeRule::WholePassword,
        (MfaPolicy::IfEnrolled, false) => CodeRule::WholePassword,
        (MfaPolicy::IfEnrolled | MfaPolicy::Required, true) => CodeRule::PasswordAndCode,
        (MfaPolicy::Required, false) => CodeRule::NotEnrolled,
    }
}

/// The global policy: store override, else config.
pub fn global(
    defaults: PolicyDefaults,
    mfa_override: Option<MfaPolicy>,
    app_override: Option<bool>,
) -> Effective {
    Effective {
        mfa: mfa_override.unwrap_or(defaults.mfa),
        app_passwords: app_override.unwrap_or(defaults.app_passwords),
    }
}

/// Combines the global policy with the explicit policies of the user's
/// groups (see the module documentation).
pub fn resolve(global: Effective, groups: &[GroupPolicy]) -> Effective {
    let mfa = groups.iter().filter_map(|g| g.mfa).max();
    let app = groups
        .iter()
        .filter_map(|g| g.app_passwords)
        .reduce(|a, b| a && b);
    Effective {
        mfa: mfa.unwrap_or(global.mfa),
        app_passwords: app.unwrap_or(global.app_passwords),
    }
}

/// The store overrides of the global policy.
pub fn overrides(store: &Store) -> Result<(Option<MfaPolicy>, Option<bool>)> {
    let mfa = match store.setting(SETTING_MFA_POLICY)? {
        Some(v) => Some(MfaPolicy::parse(&v).ok_or_else(|| {
            StoreError::Backend(format!("corrupt setting {SETTING_MFA_POLICY}: {v:?}"))
        })?),
        None => None,
    };
    let app = match store.setting(SETTING_APP_PASSWORDS)?.as_deref() {
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(v) => {
            return Err(StoreError::Backend(format!(
                "corrupt setting {SETTING_APP_PASSWORDS}: {v:?}"
            )))
        }
        None => None,
    };
    Ok((mfa, app))
}

/// The policies that apply to `user` now.
pub fn effective_for(store: &Store, user: UserId, defaults: PolicyDefaults) -> Result<Effective> {
    let (mfa, app) = overrides(store)?;
    let global = global(defaults, mfa, app);
    let mut groups = Vec::new();
    for g in store.transitive_groups_of(Member::User(user))? {
        let p = store.group_policy(g)?;
        if p != GroupPolicy::default() {
            groups.push(p);
        }
    }
    Ok(resolve(global, &groups))
}

/// How many users' policies [`PolicyCache`] keeps: a few MiB at most.
const KEPT_POLICIES: usize = 65_536;

/// The effective policies of users who bound lately, so that a repeated
/// bind (a web application's service account binds on every request)
/// does not read the global settings and walk the user's groups each
/// time.
///
/// Never fails open: an answer is kept with the store's count of
/// finished writes read before it was computed
/// ([`Backend::finished_writes`](crate::store::Backend::finished_writes)),
/// and used only while that count has not moved. Any write (a setting,
/// a group's policy, a membership, a deleted group) moves it once it is
/// done, so the next bind after it computes afresh. A backend without
/// such a count is asked every time.
#[derive(Default)]
pub struct PolicyCache {
    kept: Mutex<HashMap<UserId, (u64, Effective)>>,
}

impl PolicyCache {
    /// [`effective_for`], answered from what is kept when it is current.
    pub fn effective(
        &self,
        store: &Store,
        user: UserId,
        defaults: PolicyDefaults,
    ) -> Result<Effective> {
        let Some(writes) = store.finished_writes() else {
            return effective_for(store, user, defaults);
        };
        if let Some(&(at, effective)) = self.lock().get(&user) {
            if at == writes {
                return Ok(effective);
            }
        }
        let effective = effective_for(store, user, defaults)?;
        let mut kept = self.lock();
        if kept.len() >= KEPT_POLICIES {
            kept.retain(|_, (at, _)| *at == writes);
            if kept.len() >= KEPT_POLICIES {
                kept.clear();
            }
        }
        kept.insert(user, (writes, effective));
        Ok(effective)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (u64, Effective)>> {
        // The map holds plain values: one left by a panicking holder is fine.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of write that changes a user's policy is seen by the
    /// very next answer of the cache: it never answers with a policy that
    /// was relaxed or tightened since.
    #[test]
    fn kept_policies_follow_every_write_that_changes_them() {
        use crate::store::{NewUser, Store};
        let store = Store::temporary().expect("store");
        let user = store
            .create_user(NewUser {
                username: "kim".into(),
                ..NewUser::default()
            })
            .expect("user")
            .id;
        let cache = PolicyCache::default();
        let d = PolicyDefaults::default();
        let now = |store: &Store| cache.effective(store, user, d).expect("policy").mfa;
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

    #[test]
    fn code_rules() {
        use CodeRule::*;
        use MfaPolicy::*;
        assert_eq!(code_rule(Off, true), WholePassword);
        assert_eq!(code_rule(Off, false), WholePassword);
        assert_eq!(code_rule(IfEnrolled, true), PasswordAndCode);
        assert_eq!(code_rule(IfEnrolled, false), WholePassword);
        assert_eq!(code_rule(Required, true), PasswordAndCode);
        assert_eq!(code_rule(Required, false), NotEnrolled);
    }

    #[test]
    fn precedence() {
        let d = PolicyDefaults::default();
        let g = global(d, None, None);
        assert_eq!(g.mfa, MfaPolicy::IfEnrolled);
        assert!(g.app_passwords);
        // the CLI override beats the config
        let g = global(d, Some(MfaPolicy::Required), Some(false));
        assert_eq!(g.mfa, MfaPolicy::Required);
        assert!(!g.app_passwords);
        // no group policy: the global one
        assert_eq!(resolve(g, &[]), g);
        // an explicit group policy beats the global one (exemption)
        let exempt = GroupPolicy {
            mfa: Some(MfaPolicy::Off),
            app_passwords: Some(true),
        };
        let r = resolve(g, &[exempt]);
        assert_eq!(r.mfa, MfaPolicy::Off);
        assert!(r.app_passwords);
        // among groups, the strictest wins
        let strict = GroupPolicy {
            mfa: Some(MfaPolicy::Required),
            app_passwords: Some(false),
        };
        let r = resolve(global(d, None, None), &[exempt, strict]);
        assert_eq!(r.mfa, MfaPolicy::Required);
        assert!(!r.app_passwords);
        // a group that sets only one of the two inherits the other
        let only_app = GroupPolicy {
            mfa: None,
            app_passwords: Some(false),
        };
        let r = resolve(global(d, Some(MfaPolicy::Required), None), &[only_app]);
        assert_eq!(r.mfa, MfaPolicy::Required);
        assert!(!r.app_passwords);
    }
}
