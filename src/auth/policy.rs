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
//! them from the store (kept between binds with the rest of the account
//! by [`super::kept`]).

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

#[cfg(test)]
mod tests {
    use super::*;

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
