//! Admin requests: what the `user`, `group`, `mfa`, `app-password`,
//! `import` and `export` commands ask for, and their dispatch to the
//! account layer.
//!
//! The CLI builds an [`AdminRequest`]; it is either sent over the admin
//! socket to a running server (`socket`), which runs [`execute`] on its
//! blocking pool, or executed in the CLI's own process when no server runs.
//! Either way each request is one call into `crate::account` as the
//! operator, and the result is an [`AdminAnswer`] (`account::view`): its
//! JSON document is what the socket carries and `--json` prints; the CLI
//! renders its human output from the typed views in it.
//!
//! Layout:
//! - this file: [`AdminRequest`], [`Password`], [`AdminError`], [`execute`].
//! - `answer`: a socket answer read back into its typed form.
//! - `socket`: the Unix socket server and client.
//! - `transfer`: `import` and `export` (files that travel with the request
//!   or stream back), the same code in the server and in the CLI.
//!
//! No rule lives here: who may change what, the password policy and the
//! admin guard are the account layer's. Knows nothing of LDAP or clap.

mod answer;
pub mod socket;
#[cfg(test)]
mod tests_store;
pub mod transfer;

pub use crate::account::bootstrap::{self, bootstrap};
pub use crate::account::mfa::MAX_EXPIRY_SECS;
pub use crate::account::view::{self, AdminAnswer};
pub use crate::account::AdminContext;
pub use answer::answer_from_json;

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::account::{connections, credentials, mfa, records, AccountError, Actor};
use crate::store::CredentialKind::{ApiToken, AppPassword};
use crate::store::StoreError;

/// A password in transit. Its `Debug` never shows it, so a request can be
/// logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(password: String) -> Password {
        Password(password)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// One admin command. Serialized as a JSON object with an `op` field, e.g.
/// `{"op":"user_show","username":"alice"}`; this is the admin socket's
/// request format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    UserAdd {
        username: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// `None` creates a user who cannot bind until a password is set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Password>,
    },
    UserPasswd {
        username: String,
        password: Password,
    },
    UserShow {
        username: String,
    },
    UserList,
    UserEnable {
        username: String,
    },
    UserDisable {
        username: String,
    },
    UserDelete {
        username: String,
    },
    UserSetAttr {
        username: String,
        key: String,
        value: String,
    },
    UserUnsetAttr {
        username: String,
        key: String,
    },
    GroupAdd {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    GroupDelete {
        name: String,
    },
    GroupShow {
        name: String,
    },
    GroupList,
    GroupAddMember {
        group: String,
        user: String,
    },
    GroupRemoveMember {
        group: String,
        user: String,
    },
    GroupAddChild {
        parent: String,
        child: String,
    },
    GroupSetAttr {
        group: String,
        key: String,
        value: String,
    },
    GroupUnsetAttr {
        group: String,
        key: String,
    },
    GroupRemoveChild {
        parent: String,
        child: String,
    },
    /// `mfa totp add`: answers with the secret, once.
    MfaTotpAdd {
        username: String,
        digits: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// `mfa static add`: answers with the tokens, once.
    MfaStaticAdd {
        username: String,
        count: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    MfaList {
        username: String,
    },
    MfaRemove {
        username: String,
        device: String,
    },
    /// `mfa policy set`: `if-enrolled`, `required`, `off` or `inherit`
    /// (`inherit` removes the setting), globally or for one group.
    MfaPolicySet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        policy: String,
    },
    /// `mfa policy show` and `app-password policy show`.
    PolicyShow,
    /// `app-password add`: answers with the secret, once.
    AppPasswordAdd {
        username: String,
        name: String,
        /// Seconds from now; `None` never expires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_secs: Option<u64>,
    },
    AppPasswordList {
        username: String,
    },
    AppPasswordRevoke {
        username: String,
        id: String,
    },
    /// `app-password policy set`: `on`, `off` or `inherit`, globally or for
    /// one group.
    AppPasswordPolicySet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        setting: String,
    },
    /// `token add`: an API token, answered with the secret once.
    TokenAdd {
        username: String,
        name: String,
        /// Seconds from now; `None` never expires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_secs: Option<u64>,
    },
    TokenList {
        username: String,
    },
    TokenRevoke {
        username: String,
        id: String,
    },
    /// `session list [USER]`.
    SessionList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
    },
    /// `session end ID`.
    SessionEnd {
        id: String,
    },
}

impl AdminRequest {
    /// The `op` name, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            AdminRequest::UserAdd { .. } => "user_add",
            AdminRequest::UserPasswd { .. } => "user_passwd",
            AdminRequest::UserShow { .. } => "user_show",
            AdminRequest::UserList => "user_list",
            AdminRequest::UserEnable { .. } => "user_enable",
            AdminRequest::UserDisable { .. } => "user_disable",
            AdminRequest::UserDelete { .. } => "user_delete",
            AdminRequest::UserSetAttr { .. } => "user_set_attr",
            AdminRequest::UserUnsetAttr { .. } => "user_unset_attr",
            AdminRequest::GroupAdd { .. } => "group_add",
            AdminRequest::GroupDelete { .. } => "group_delete",
            AdminRequest::GroupShow { .. } => "group_show",
            AdminRequest::GroupList => "group_list",
            AdminRequest::GroupAddMember { .. } => "group_add_member",
            AdminRequest::GroupRemoveMember { .. } => "group_remove_member",
            AdminRequest::GroupSetAttr { .. } => "group_set_attr",
            AdminRequest::GroupUnsetAttr { .. } => "group_unset_attr",
            AdminRequest::GroupAddChild { .. } => "group_add_child",
            AdminRequest::GroupRemoveChild { .. } => "group_remove_child",
            AdminRequest::MfaTotpAdd { .. } => "mfa_totp_add",
            AdminRequest::MfaStaticAdd { .. } => "mfa_static_add",
            AdminRequest::MfaList { .. } => "mfa_list",
            AdminRequest::MfaRemove { .. } => "mfa_remove",
            AdminRequest::MfaPolicySet { .. } => "mfa_policy_set",
            AdminRequest::PolicyShow => "policy_show",
            AdminRequest::AppPasswordAdd { .. } => "app_password_add",
            AdminRequest::AppPasswordList { .. } => "app_password_list",
            AdminRequest::AppPasswordRevoke { .. } => "app_password_revoke",
            AdminRequest::AppPasswordPolicySet { .. } => "app_password_policy_set",
            AdminRequest::TokenAdd { .. } => "token_add",
            AdminRequest::TokenList { .. } => "token_list",
            AdminRequest::TokenRevoke { .. } => "token_revoke",
            AdminRequest::SessionList { .. } => "session_list",
            AdminRequest::SessionEnd { .. } => "session_end",
        }
    }
}

/// Why a request failed, in terms the operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request breaks a rule (bad name, cycle, protected group, …).
    #[error("{0}")]
    Invalid(String),
    /// Storage or hashing failed. The detail is shown to the local CLI and
    /// logged by the server, never sent over the socket.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    /// The `kind` of the socket's error object.
    pub fn kind(&self) -> &'static str {
        match self {
            AdminError::NotFound(_) => "not_found",
            AdminError::AlreadyExists(_) => "already_exists",
            AdminError::Invalid(_) => "invalid",
            AdminError::Internal(_) => "internal",
        }
    }

    /// Rebuilds an error from the socket's `kind` and `message`.
    pub fn from_kind(kind: &str, message: String) -> AdminError {
        match kind {
            "not_found" => AdminError::NotFound(message),
            "already_exists" => AdminError::AlreadyExists(message),
            "invalid" => AdminError::Invalid(message),
            _ => AdminError::Internal(message),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        let text = e.to_string();
        match e {
            StoreError::NotFound(_) => AdminError::NotFound(text),
            StoreError::AlreadyExists(_) => AdminError::AlreadyExists(text),
            StoreError::Invalid(message) => AdminError::Invalid(message),
            StoreError::Backend(detail) => AdminError::Internal(detail),
        }
    }
}

impl From<AccountError> for AdminError {
    fn from(e: AccountError) -> AdminError {
        match e {
            AccountError::NotFound(m) => AdminError::NotFound(m),
            AccountError::AlreadyExists(m) => AdminError::AlreadyExists(m),
            AccountError::Invalid(m) | AccountError::Denied(m) => AdminError::Invalid(m),
            AccountError::Password(r) => AdminError::Invalid(r.to_string()),
            AccountError::Store(e) => AdminError::from(e),
            e @ (AccountError::InvalidCredentials
            | AccountError::Busy
            | AccountError::Internal(_)) => AdminError::Internal(e.to_string()),
        }
    }
}

/// Runs one request. Blocking (it may hash a password and it waits on the
/// store): async callers run it inside `tokio::task::spawn_blocking`.
///
/// Reads answer with the view (`user show`, `group show`) or a list of them
/// (`user list`, `group list`). Changes answer with a [`view::UserChanged`] or
/// [`view::GroupChanged`] holding the view after the change (before it, for
/// deletions).
pub fn execute(ctx: &AdminContext, req: AdminRequest) -> Result<AdminAnswer, AdminError> {
    dispatch(ctx, &Actor::Operator, req).map_err(AdminError::from)
}

/// Each request is one call into the account layer, as the operator.
fn dispatch(
    ctx: &AdminContext,
    actor: &Actor,
    req: AdminRequest,
) -> Result<AdminAnswer, AccountError> {
    match req {
        AdminRequest::UserAdd {
            username,
            full_name,
            email,
            password,
        } => records::user_add(
            ctx,
            actor,
            username,
            full_name,
            email,
            password.as_ref().map(Password::expose),
        ),
        AdminRequest::UserPasswd { username, password } => {
            records::user_passwd(ctx, actor, &username, password.expose())
        }
        AdminRequest::UserShow { username } => records::user_show(ctx, actor, &username),
        AdminRequest::UserList => records::user_list(ctx, actor),
        AdminRequest::UserEnable { username } => {
            records::set_disabled(ctx, actor, &username, false)
        }
        AdminRequest::UserDisable { username } => {
            records::set_disabled(ctx, actor, &username, true)
        }
        AdminRequest::UserDelete { username } => records::user_delete(ctx, actor, &username),
        AdminRequest::UserSetAttr {
            username,
            key,
            value,
        } => records::user_set_attr(ctx, actor, &username, &key, Some(value)),
        AdminRequest::UserUnsetAttr { username, key } => {
            records::user_set_attr(ctx, actor, &username, &key, None)
        }
        AdminRequest::GroupAdd { name, description } => {
            records::group_add(ctx, actor, &name, description)
        }
        AdminRequest::GroupDelete { name } => records::group_delete(ctx, actor, &name),
        AdminRequest::GroupShow { name } => records::group_show(ctx, actor, &name),
        AdminRequest::GroupList => records::group_list(ctx, actor),
        AdminRequest::GroupAddMember { group, user } => {
            records::add_member(ctx, actor, &group, &user)
        }
        AdminRequest::GroupRemoveMember { group, user } => {
            records::remove_member(ctx, actor, &group, &user)
        }
        AdminRequest::GroupSetAttr { group, key, value } => {
            records::group_set_attr(ctx, actor, &group, &key, Some(value))
        }
        AdminRequest::GroupUnsetAttr { group, key } => {
            records::group_set_attr(ctx, actor, &group, &key, None)
        }
        AdminRequest::GroupAddChild { parent, child } => {
            records::add_child(ctx, actor, &parent, &child)
        }
        AdminRequest::GroupRemoveChild { parent, child } => {
            records::remove_child(ctx, actor, &parent, &child)
        }
        AdminRequest::MfaTotpAdd {
            username,
            digits,
            label,
        } => mfa::totp_add(ctx, actor, &username, digits, label),
        AdminRequest::MfaStaticAdd {
            username,
            count,
            label,
        } => mfa::static_add(ctx, actor, &username, count, label),
        AdminRequest::MfaList { username } => mfa::list(ctx, actor, &username),
        AdminRequest::MfaRemove { username, device } => mfa::remove(ctx, actor, &username, &device),
        AdminRequest::MfaPolicySet { group, policy } => {
            mfa::mfa_policy_set(ctx, actor, group.as_deref(), &policy)
        }
        AdminRequest::PolicyShow => mfa::policy_show(ctx, actor),
        AdminRequest::AppPasswordAdd {
            username,
            name,
            expires_in_secs,
        } => credentials::add(ctx, actor, AppPassword, &username, &name, expires_in_secs),
        AdminRequest::AppPasswordList { username } => {
            credentials::list(ctx, actor, AppPassword, &username)
        }
        AdminRequest::AppPasswordRevoke { username, id } => {
            credentials::revoke(ctx, actor, AppPassword, &username, &id)
        }
        AdminRequest::TokenAdd {
            username,
            name,
            expires_in_secs,
        } => credentials::add(ctx, actor, ApiToken, &username, &name, expires_in_secs),
        AdminRequest::TokenList { username } => credentials::list(ctx, actor, ApiToken, &username),
        AdminRequest::TokenRevoke { username, id } => {
            credentials::revoke(ctx, actor, ApiToken, &username, &id)
        }
        AdminRequest::SessionList { username } => {
            connections::session_list(ctx, actor, username.as_deref())
        }
        AdminRequest::SessionEnd { id } => connections::session_end(ctx, actor, &id),
        AdminRequest::AppPasswordPolicySet { group, setting } => {
            mfa::app_password_policy_set(ctx, actor, group.as_deref(), &setting)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    fn every_request() -> Vec<AdminRequest> {
        let s = |x: &str| x.to_string();
        vec![
            AdminRequest::UserAdd {
                username: s("alice"),
                full_name: Some(s("Alice Liddell")),
                email: Some(s("alice@example.com")),
                password: Some(Password::new(s("s3cret;x"))),
            },
            AdminRequest::UserAdd {
                username: s("bob"),
                full_name: None,
                email: None,
                password: None,
            },
            AdminRequest::UserPasswd {
                username: s("alice"),
                password: Password::new(s("n\u{e9}w \"pw\"")),
            },
            AdminRequest::UserShow {
                username: s("alice"),
            },
            AdminRequest::UserList,
            AdminRequest::UserEnable {
                username: s("alice"),
            },
            AdminRequest::UserDisable {
                username: s("alice"),
            },
            AdminRequest::UserDelete {
                username: s("alice"),
            },
            AdminRequest::UserSetAttr {
                username: s("alice"),
                key: s("loginShell"),
                value: s("/bin/zsh"),
            },
            AdminRequest::UserUnsetAttr {
                username: s("alice"),
                key: s("loginShell"),
            },
            AdminRequest::GroupAdd {
                name: s("staff"),
                description: Some(s("Everyone")),
            },
            AdminRequest::GroupAdd {
                name: s("staff"),
                description: None,
            },
            AdminRequest::GroupDelete { name: s("staff") },
            AdminRequest::GroupShow { name: s("staff") },
            AdminRequest::GroupList,
            AdminRequest::GroupAddMember {
                group: s("staff"),
                user: s("alice"),
            },
            AdminRequest::GroupRemoveMember {
                group: s("staff"),
                user: s("alice"),
            },
            AdminRequest::GroupAddChild {
                parent: s("staff"),
                child: s("devs"),
            },
            AdminRequest::GroupRemoveChild {
                parent: s("staff"),
                child: s("devs"),
            },
            AdminRequest::MfaTotpAdd {
                username: s("alice"),
                digits: 6,
                label: Some(s("phone")),
            },
            AdminRequest::MfaStaticAdd {
                username: s("alice"),
                count: 6,
                label: None,
            },
            AdminRequest::MfaList {
                username: s("alice"),
            },
            AdminRequest::MfaRemove {
                username: s("alice"),
                device: s("0000"),
            },
            AdminRequest::MfaPolicySet {
                group: Some(s("svc")),
                policy: s("off"),
            },
            AdminRequest::PolicyShow,
            AdminRequest::AppPasswordAdd {
                username: s("alice"),
                name: s("mail"),
                expires_in_secs: Some(3600),
            },
            AdminRequest::AppPasswordList {
                username: s("alice"),
            },
            AdminRequest::AppPasswordRevoke {
                username: s("alice"),
                id: s("0000"),
            },
            AdminRequest::AppPasswordPolicySet {
                group: None,
                setting: s("off"),
            },
            AdminRequest::TokenAdd {
                username: s("alice"),
                name: s("backup script"),
                expires_in_secs: None,
            },
            AdminRequest::TokenList {
                username: s("alice"),
            },
            AdminRequest::TokenRevoke {
                username: s("alice"),
                id: s("0000"),
            },
            AdminRequest::SessionList { username: None },
            AdminRequest::SessionEnd { id: s("0000") },
        ]
    }

    #[test]
    fn every_request_round_trips_through_json() {
        let mut ops = BTreeSet::new();
        for req in every_request() {
            let text = serde_json::to_string(&req).expect("serialize");
            let back: AdminRequest = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, req, "{text}");
            let value: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(value["op"], req.op(), "{text}");
            ops.insert(req.op());
        }
        assert_eq!(ops.len(), 32, "every variant covered");
    }

    #[test]
    fn wire_format() {
        let req: AdminRequest =
            serde_json::from_str(r#"{"op":"user_add","username":"carol"}"#).expect("parse");
        assert_eq!(
            req,
            AdminRequest::UserAdd {
                username: "carol".into(),
                full_name: None,
                email: None,
                password: None
            }
        );
        let req = AdminRequest::GroupAddMember {
            group: "admins".into(),
            user: "carol".into(),
        };
        assert_eq!(
            serde_json::to_value(&req).expect("json"),
            json!({"op": "group_add_member", "group": "admins", "user": "carol"})
        );
        assert_eq!(
            serde_json::to_value(AdminRequest::UserList).expect("json"),
            json!({"op": "user_list"})
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            r#"{"op":"user_show"}"#,
            r#"{"op":"user_show","username":"a","extra":1}"#,
            r#"{"op":"user_frobnicate","username":"a"}"#,
            r#"{"username":"a"}"#,
            r#""user_list""#,
        ] {
            assert!(serde_json::from_str::<AdminRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let req = AdminRequest::UserPasswd {
            username: "alice".into(),
            password: Password::new("hunter2".into()),
        };
        let debug = format!("{req:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("********"));
    }

    #[test]
    fn error_kinds_round_trip() {
        for e in [
            AdminError::NotFound("user x not found".into()),
            AdminError::AlreadyExists("user x already exists".into()),
            AdminError::Invalid("bad".into()),
            AdminError::Internal("disk".into()),
        ] {
            let message = match &e {
                AdminError::NotFound(m)
                | AdminError::AlreadyExists(m)
                | AdminError::Invalid(m)
                | AdminError::Internal(m) => m.clone(),
            };
            assert_eq!(AdminError::from_kind(e.kind(), message), e);
        }
    }

    #[test]
    fn store_errors_map_to_admin_errors() {
        assert_eq!(
            AdminError::from(StoreError::NotFound("user x".into())),
            AdminError::NotFound("user x not found".into())
        );
        assert_eq!(
            AdminError::from(StoreError::AlreadyExists("group y".into())),
            AdminError::AlreadyExists("group y already exists".into())
        );
        assert_eq!(
            AdminError::from(StoreError::Invalid("cycle".into())),
            AdminError::Invalid("cycle".into())
        );
        assert!(matches!(
            AdminError::from(StoreError::Backend("io".into())),
            AdminError::Internal(_)
        ));
    }
}
