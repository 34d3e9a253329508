//! LDAP writes (add, modify, delete, modify DN) mapped onto store changes,
//! with the write access rules. Knows nothing of sockets or BER: the
//! protocol layer hands in DNs and attribute values and maps
//! [`WriteError`] to result codes.
//!
//! # Who may write
//! - Admins (enabled members of `ldap.admin_group`, directly or through
//!   nested groups — the rule that gives full read access in search) may
//!   add, modify, delete and rename users and groups under `ou=users` and
//!   `ou=groups`. Members of the search group only read.
//! - Any other bound user may modify only their own entry, and only the
//!   self-service attributes [`SELF_SERVICE`]; everything else, including
//!   `userPassword` (use Password Modify, which checks the old password),
//!   is insufficientAccessRights (50). Anonymous clients may not write (50).
//!   The rules are the same on plain LDAP, LDAPS and after StartTLS.
//!
//! # Mapping
//! - Add `cn=<name>,ou=users,<base>` (objectClass among top, person,
//!   organizationalPerson, inetOrgPerson, posixAccount) creates a user;
//!   `cn=<name>,ou=groups,<base>` (top, groupOfNames, posixGroup) a group
//!   with its members. Both go through the store's batch write, the one
//!   import uses, so a new entry and its memberships land together.
//!   `cn`/`uid` must equal the RDN value; uidNumber/gidNumber are kept when
//!   given (0 is refused; a number in use is constraintViolation) and the
//!   allocators move past them. `userPassword` in clear is hashed with
//!   argon2id by the caller (off the reactor); `{SSHA}`, `{CRYPT}`,
//!   `{ARGON2}`… values are stored as import stores them.
//! - Modify applies the changes in order to a copy of the record and writes
//!   the result in one transaction (compare-and-swap; planned again if the
//!   record changed meanwhile), so a request never half-applies.
//!   Attributes the store keeps once (displayName, mail, sn, loginShell,
//!   …) hold one value: a second one is constraintViolation (19).
//!   `member`/`uniqueMember` (DNs of users and groups) and `memberUid`
//!   (user names) edit the same direct-member set. A member that does not
//!   exist is constraintViolation (19): the request, not the target entry,
//!   is at fault (noSuchObject would say the target is missing).
//! - Delete removes a user or group as `user delete`/`group delete` do;
//!   the containers answer notAllowedOnNonLeaf (66); the configured admin
//!   and search groups, and the last enabled admin, are unwillingToPerform
//!   (53), as the CLI refuses them.
//! - Modify DN renames within the same container. `deleteoldrdn` is
//!   accepted either way, but the old name is never kept: cn and uid are
//!   the name. A newSuperior other than the current parent is
//!   unwillingToPerform (53).
//! - Server-computed attributes (memberOf, entryUUID, timestamps,
//!   `ak-*`, …) are constraintViolation (19) "no user modification", as
//!   OpenLDAP answers; uidNumber/gidNumber changes after creation are
//!   unwillingToPerform (53): they are stable. Unknown attributes are
//!   undefinedAttributeType (17); known ones the entry's classes do not
//!   allow are objectClassViolation (65).

mod access;
mod add;
mod delete;
mod modify;
mod rename;
mod values;

use crate::domain::attrs::Attrs;
use std::collections::BTreeSet;

use uuid::Uuid;

use super::admins::{ensure_admins_remain, Removal};
use super::{AccountError, Accounts, Actor};
use crate::auth::legacy::{parse_user_password, StoredPassword};
use crate::auth::Secret;
use crate::directory::schema::{self, AttributeType, Syntax};
use crate::directory::tree::{self, Target};
use crate::directory::{Dn, Identity};
use crate::store::import::{Batch, BatchGroup, BatchMember, BatchMode, BatchUser};
use crate::store::{now, Group, GroupId, Member, Store, StoreError, User, UserId};
use values::*;

/// Attributes an ordinary user may change on their own entry.
pub const SELF_SERVICE: &[&str] = &[
    "displayName",
    "givenName",
    "sn",
    "mail",
    "loginShell",
    "telephoneNumber",
    "mobile",
];

/// Longest value of a free-text attribute kept in `User::attrs`.
const MAX_TEXT: usize = 1024;
/// How often a modify is planned again because the record changed under it.
const MAX_ATTEMPTS: usize = 16;

/// One modification of a modify request (RFC 4511 §4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModKind {
    Add,
    Delete,
    Replace,
}

/// An attribute and its values as the client sent them.
#[derive(Clone, PartialEq, Eq)]
pub struct AttrValues {
    pub name: String,
    pub values: Vec<Vec<u8>>,
}

// Values may hold a userPassword: never print them.
impl std::fmt::Debug for AttrValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} values)", self.name, self.values.len())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modification {
    pub kind: ModKind,
    pub attr: AttrValues,
}

/// Why a write was refused; each variant is one LDAP result code.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// 32; `matched` is the deepest existing ancestor.
    #[error("{message}")]
    NoSuchObject {
        matched: Option<Dn>,
        message: String,
    },
    /// 50
    #[error("{0}")]
    InsufficientAccess(String),
    /// 68
    #[error("{0}")]
    AlreadyExists(String),
    /// 64
    #[error("{0}")]
    NamingViolation(String),
    /// 65
    #[error("{0}")]
    ObjectClassViolation(String),
    /// 69
    #[error("{0}")]
    ObjectClassModsProhibited(String),
    /// 17
    #[error("{0}")]
    UndefinedAttributeType(String),
    /// 21
    #[error("{0}")]
    InvalidAttributeSyntax(String),
    /// 34
    #[error("{0}")]
    InvalidDnSyntax(String),
    /// 19
    #[error("{0}")]
    ConstraintViolation(String),
    /// 16
    #[error("{0}")]
    NoSuchAttribute(String),
    /// 20
    #[error("{0}")]
    AttributeOrValueExists(String),
    /// 66
    #[error("{0}")]
    NotAllowedOnNonLeaf(String),
    /// 67
    #[error("{0}")]
    NotAllowedOnRdn(String),
    /// 53
    #[error("{0}")]
    UnwillingToPerform(String),
    /// 2
    #[error("{0}")]
    ProtocolError(String),
    /// The store failed; mapped like any store error (backend → 52).
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = WriteError> = std::result::Result<T, E>;

/// How far a write got.
#[derive(Debug)]
pub enum Progress {
    /// Written and flushed; the text is a secret-free summary for the
    /// audit log.
    Done(String),
    /// The request carries a password in clear: hash it (argon2id, off the
    /// reactor) and call again with the hash.
    NeedsHash(Secret),
}

/// Who is writing.
enum Writer {
    Admin,
    SelfService(User),
}

impl Accounts {
    /// A new password in clear for `user` (as the change leaves it) against
    /// the configured policy: constraintViolation (19) when refused.
    fn check_password_policy(&self, secret: &str, user: &User) -> Result<()> {
        let context = [
            user.username.as_str(),
            user.full_name.as_deref().unwrap_or(""),
            user.email.as_deref().unwrap_or(""),
        ];
        self.settings
            .password
            .check(secret, &context)
            .map_err(|r| WriteError::ConstraintViolation(format!("userPassword: {r}")))
    }

    /// A user changing their own loginShell may pick only a shell of
    /// `accounts.login_shells` (constraintViolation otherwise); admins may
    /// set any path the syntax allows.
    fn check_own_shell(&self, before: &User, after: &User) -> Result<()> {
        let shell = |u: &User| u.attrs.pair_like("loginShell").map(|(_, v)| v.to_string());
        match shell(after) {
            Some(new)
                if shell(before).as_ref() != Some(&new) && !self.settings.allows_shell(&new) =>
            {
                Err(WriteError::ConstraintViolation(format!(
                    "loginShell: {new} is not one of the shells users may choose ({})",
                    self.settings.login_shells.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }
}

fn access(msg: &str) -> WriteError {
    WriteError::InsufficientAccess(msg.to_string())
}

fn admin_error(e: AccountError) -> WriteError {
    match e {
        AccountError::Invalid(m) => WriteError::UnwillingToPerform(m),
        AccountError::Denied(m) => WriteError::InsufficientAccess(m),
        AccountError::NotFound(m) => WriteError::NoSuchObject {
            matched: None,
            message: m,
        },
        AccountError::AlreadyExists(m) => WriteError::AlreadyExists(m),
        AccountError::Password(r) => WriteError::ConstraintViolation(format!("userPassword: {r}")),
        AccountError::Store(e) => WriteError::Store(e),
        e @ (AccountError::InvalidCredentials | AccountError::Busy | AccountError::Internal(_)) => {
            WriteError::Store(StoreError::Backend(e.to_string()))
        }
    }
}

/// A write that committed (durably: the store's writes are).
pub(super) fn done(summary: String) -> Result<Progress> {
    Ok(Progress::Done(summary))
}

#[cfg(test)]
mod tests;
