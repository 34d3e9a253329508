//! Domain errors → LDAP result codes. One exhaustive mapping; internal
//! details go to the log, clients get a safe text.

use ldap3_proto::proto::{LdapResult, LdapResultCode};

use crate::directory::DirectoryError;
use crate::domain::StoreError;

/// An LDAPResult with an empty matchedDN and no referrals.
pub fn ldap_result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.to_string(),
        referral: Vec::new(),
    }
}

pub fn success() -> LdapResult {
    ldap_result(LdapResultCode::Success, "")
}

/// Maps a directory error to the result a client sees.
pub fn from_directory(err: &DirectoryError) -> LdapResult {
    match err {
        DirectoryError::NoSuchObject { matched } => LdapResult {
            code: LdapResultCode::NoSuchObject,
            matcheddn: matched.as_ref().map(|d| d.to_string()).unwrap_or_default(),
            message: "no such object".into(),
            referral: Vec::new(),
        },
        DirectoryError::InsufficientAccess(why) => {
            ldap_result(LdapResultCode::InsufficentAccessRights, why)
        }
        DirectoryError::Store(e) => from_store(e),
    }
}

/// Maps a store error; backend failures are logged, never described.
pub fn from_store(err: &StoreError) -> LdapResult {
    match err {
        StoreError::NotFound(what) => {
            ldap_result(LdapResultCode::NoSuchObject, &format!("{what} not found"))
        }
        StoreError::AlreadyExists(what) => ldap_result(
            LdapResultCode::EntryAlreadyExists,
            &format!("{what} already exists"),
        ),
        StoreError::Invalid(why) => ldap_result(LdapResultCode::ConstraintViolation, why),
        StoreError::Backend(detail) => {
            tracing::error!(error = %detail, "store failure");
            ldap_result(LdapResultCode::Unavailable, "the directory is unavailable")
        }
    }
}
