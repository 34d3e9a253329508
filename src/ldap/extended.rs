//! Extended operations: WhoAmI (RFC 4532) and Password Modify (RFC 3062).
//! Unknown ones get protocolError (RFC 4511 §4.12).

use ldap3_proto::proto::{
    LdapExtendedRequest, LdapExtendedResponse, LdapMsg, LdapOp, LdapPasswordModifyRequest,
    LdapPasswordModifyResponse, LdapResultCode,
};
use rand::distributions::{Alphanumeric, DistString};

use super::handler::{Handler, Outcome, Session};
use super::result::{from_store, ldap_result, success};
use crate::auth::{BindOutcome, Method, Refusal, Secret};
use crate::directory::{tree, Dn, Identity, Target};

/// Longest password accepted, in bytes.
const MAX_PASSWORD_LEN: usize = 4096;

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

    /// RFC 3062: a user changes its own password with the old one; an admin
    /// sets anyone's. Returns the generated password when none was given.
    async fn password_modify(
        &self,
        session: &Session,
        req: LdapPasswordModifyRequest,
    ) -> Result<Option<String>, ldap3_proto::proto::LdapResult> {
        let Identity::User {
            id: self_id,
            username: self_name,
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
        let is_self = target.eq_ignore_ascii_case(self_name);
        let directory = self.directory.clone();
        let identity = session.identity.clone();
        let is_admin = tokio::task::spawn_blocking(move || directory.is_admin(&identity))
            .await
            .map_err(|_| ldap_result(LdapResultCode::Other, "password change failed"))?
            .map_err(|e| from_store(&e))?;
        if !is_self && !is_admin {
            return Err(ldap_result(
                LdapResultCode::InsufficentAccessRights,
                "only admins may change another user's password",
            ));
        }
        let store = self.directory.store();
        let user = store
            .user_by_name(&target)
            .map_err(|e| from_store(&e))?
            .ok_or_else(|| ldap_result(LdapResultCode::NoSuchObject, "no such user"))?;
        if is_self && !is_admin {
            let Some(old) = req.old_password.filter(|o| !o.is_empty()) else {
                return Err(ldap_result(
                    LdapResultCode::UnwillingToPerform,
                    "the old password is required",
                ));
            };
            match self
                .auth
                .authenticate(
                    self_name,
                    &Secret(old),
                    session.peer.ip(),
                    std::time::SystemTime::now(),
                )
                .await
            {
                // An app password cannot change the account's password: it is
                // for one application, not for managing the account.
                BindOutcome::Success { user, method, .. }
                    if user.id == *self_id && method != Method::AppPassword => {}
                BindOutcome::Refused {
                    reason: Refusal::Busy,
                    ..
                } => {
                    return Err(ldap_result(
                        LdapResultCode::Busy,
                        "the server is busy; try again",
                    ))
                }
                _ => {
                    return Err(ldap_result(
                        LdapResultCode::InvalidCredentials,
                        "invalid credentials",
                    ))
                }
            }
        }
        let (new_password, generated) = match req.new_password.filter(|p| !p.is_empty()) {
            Some(p) => (p, None),
            None => {
                let p = Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24);
                (p.clone(), Some(p))
            }
        };
        if new_password.len() > MAX_PASSWORD_LEN {
            return Err(ldap_result(
                LdapResultCode::ConstraintViolation,
                "the new password is too long",
            ));
        }
        let phc = self
            .auth
            .hasher()
            .hash(new_password)
            .await
            .map_err(|_| ldap_result(LdapResultCode::Other, "password change failed"))?;
        store
            .set_password_hash(user.id, &phc)
            .and_then(|()| store.flush())
            .map_err(|e| from_store(&e))?;
        tracing::info!(target: "portcullis::audit", user = %user.username, by = %self_name, "password changed");
        Ok(generated)
    }
}
