//! Extended operations: WhoAmI (RFC 4532) and Password Modify (RFC 3062).
//! Unknown ones get protocolError (RFC 4511 §4.12).

use super::handler::{Handler, Outcome, Session};
use super::result::{from_store, ldap_result, success};
use crate::account::passwd::PasswordChange;
use crate::account::{AccountError, Actor};
use crate::auth::Secret;
use crate::directory::{tree, Dn, Identity, Target};
use ldap3_proto::proto::{
    LdapExtendedRequest, LdapExtendedResponse, LdapMsg, LdapOp, LdapPasswordModifyRequest,
    LdapPasswordModifyResponse, LdapResultCode,
};

impl Handler {
    pub(super) async fn extended(
        &self,
        session: &mut Session,
        msgid: i32,
        req: LdapExtendedRequest,
    ) -> Outcome {
        let respond = |res, value: Option<Vec<u8>>| {
            Outcome::one(LdapMsg::new(
                msgid,
                LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res,
                    name: None,
                    value,
                }),
            ))
        };
        match req.name.as_str() {
            super::OID_WHOAMI => {
                let authzid = match &session.identity {
                    Identity::Anonymous => String::new(),
                    Identity::User { username, .. } => {
                        format!("dn:{}", tree::user_dn(self.directory.base(), username))
                    }
                };
                respond(success(), Some(authzid.into_bytes()))
            }
            super::OID_PASSWORD_MODIFY => {
                let res = match LdapPasswordModifyRequest::try_from(&req) {
                    Ok(pm) => self.password_modify(session, pm).await,
                    Err(_) => Err(ldap_result(
                        LdapResultCode::ProtocolError,
                        "malformed password modify request",
                    )),
                };
                match res {
                    Ok(Some(gen_password)) => {
                        let ext: LdapExtendedResponse = LdapPasswordModifyResponse {
                            res: success(),
                            gen_password: Some(gen_password),
                        }
                        .into();
                        Outcome::one(LdapMsg::new(msgid, LdapOp::ExtendedResponse(ext)))
                    }
                    // RFC 3062 §2: without a generated password the
                    // responseValue is absent. An empty SEQUENCE there makes
                    // Python's ldap3 fail to read a successful change.
                    Ok(None) => respond(success(), None),
                    Err(res) => respond(res, None),
                }
            }
            _ => respond(
                ldap_result(
                    LdapResultCode::ProtocolError,
                    "unsupported extended operation",
                ),
                None,
            ),
        }
    }

    /// RFC 3062: the target named by DN (`dn:` optional) or `u:name`, the
    /// change decided by the account layer ([`crate::account::passwd`]).
    /// Returns the generated password when none was given.
    async fn password_modify(
        &self,
        session: &Session,
        req: LdapPasswordModifyRequest,
    ) -> Result<Option<String>, ldap3_proto::proto::LdapResult> {
        let Identity::User {
            username: self_name,
            ..
        } = &session.identity
        else {
            return Err(ldap_result(
                LdapResultCode::InsufficentAccessRights,
                "bind before changing a password",
            ));
        };
        let target = match req.user_identity.as_deref() {
            None | Some("") => self_name.clone(),
            Some(identity) => {
                let dn_str = identity.strip_prefix("dn:").unwrap_or(identity);
                let as_dn = Dn::parse(dn_str).ok().and_then(|dn| {
                    match tree::classify(&dn, self.directory.base()) {
                        Target::User(name) => Some(name),
                        _ => None,
                    }
                });
                match (as_dn, identity.strip_prefix("u:")) {
                    (Some(name), _) => name,
                    (None, Some(name)) => name.to_string(),
                    (None, None) => {
                        return Err(ldap_result(LdapResultCode::NoSuchObject, "no such user"))
                    }
                }
            }
        };
        let change = PasswordChange {
            target,
            old: req.old_password.map(Secret),
            new: req.new_password.map(Secret),
            peer: session.peer.ip(),
        };
        let actor = Actor::Bound(session.identity.clone());
        self.accounts
            .change_password(&actor, change)
            .await
            .map_err(|e| from_account(&e))
    }
}

/// The result a client sees for a refused password change.
fn from_account(e: &AccountError) -> ldap3_proto::proto::LdapResult {
    use LdapResultCode as C;
    match e {
        AccountError::Denied(m) => ldap_result(C::InsufficentAccessRights, m),
        AccountError::NotFound(_) => ldap_result(C::NoSuchObject, "no such user"),
        AccountError::AlreadyExists(m) => ldap_result(C::EntryAlreadyExists, m),
        AccountError::Invalid(m) => ldap_result(C::UnwillingToPerform, m),
        AccountError::Password(r) => ldap_result(C::ConstraintViolation, &r.to_string()),
        AccountError::InvalidCredentials => {
            ldap_result(C::InvalidCredentials, "invalid credentials")
        }
        AccountError::Busy => ldap_result(C::Busy, "the server is busy; try again"),
        AccountError::Store(e) => from_store(e),
        AccountError::Internal(detail) => {
            tracing::error!(error = %detail, "password change failed");
            ldap_result(C::Other, "password change failed")
        }
    }
}
