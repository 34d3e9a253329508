//! Add, modify, delete and modify DN (RFC 4511 §4.6–4.9): the wire types
//! in, `account::write` decides, result codes out.
//!
//! The directory work (store reads and the write with its flush) runs on
//! the blocking pool; a password in clear is hashed with the auth hasher
//! (argon2id, bounded, off the reactor) between two passes, so the store
//! only ever sees the hash. Access rules and the attribute mapping are
//! documented in `account::write`.

use ldap3_proto::proto::{
    LdapAddRequest, LdapModifyDNRequest, LdapModifyRequest, LdapModifyType, LdapMsg, LdapOp,
    LdapResult, LdapResultCode,
};

use super::handler::{Handler, Outcome, Session};
use super::result::{from_store, ldap_result, success};
use crate::account::write::{AttrValues, ModKind, Modification, Progress, WriteError};
use crate::account::{Accounts, Actor};
use crate::directory::{Dn, Identity};

/// One write, as the blocking pool runs it.
enum Write {
    Add(Vec<AttrValues>),
    Modify(Vec<Modification>),
    Delete,
    Rename {
        new_rdn: String,
        new_superior: Option<String>,
    },
}

impl Handler {
    pub(super) async fn add(&self, session: &Session, msgid: i32, req: LdapAddRequest) -> Outcome {
        let attrs = req
            .attributes
            .into_iter()
            .map(|a| AttrValues {
                name: a.atype,
                values: a.vals,
            })
            .collect();
        let res = self.write(session, &req.dn, Write::Add(attrs)).await;
        Outcome::one(LdapMsg::new(msgid, LdapOp::AddResponse(res)))
    }

    pub(super) async fn modify(
        &self,
        session: &Session,
        msgid: i32,
        req: LdapModifyRequest,
    ) -> Outcome {
        let respond = |res| Outcome::one(LdapMsg::new(msgid, LdapOp::ModifyResponse(res)));
        let mut changes = Vec::with_capacity(req.changes.len());
        for c in req.changes {
            let kind = match c.operation {
                LdapModifyType::Add => ModKind::Add,
                LdapModifyType::Delete => ModKind::Delete,
                LdapModifyType::Replace => ModKind::Replace,
                // RFC 4525: no attribute here is a counter clients may bump.
                LdapModifyType::Increment => {
                    return respond(ldap_result(
                        LdapResultCode::UnwillingToPerform,
                        "modify-increment is not supported",
                    ))
                }
            };
            changes.push(Modification {
                kind,
                attr: AttrValues {
                    name: c.modification.atype,
                    values: c.modification.vals,
                },
            });
        }
        respond(self.write(session, &req.dn, Write::Modify(changes)).await)
    }

    pub(super) async fn delete(&self, session: &Session, msgid: i32, dn: String) -> Outcome {
        let res = self.write(session, &dn, Write::Delete).await;
        Outcome::one(LdapMsg::new(msgid, LdapOp::DelResponse(res)))
    }

    pub(super) async fn modify_dn(
        &self,
        session: &Session,
        msgid: i32,
        req: LdapModifyDNRequest,
    ) -> Outcome {
        let write = Write::Rename {
            new_rdn: req.newrdn,
            new_superior: req.new_superior,
        };
        let res = self.write(session, &req.dn, write).await;
        Outcome::one(LdapMsg::new(msgid, LdapOp::ModifyDNResponse(res)))
    }

    /// Runs one write: at most two passes on the blocking pool, with a
    /// password hash in between when the request carries one in clear.
    async fn write(&self, session: &Session, dn: &str, write: Write) -> LdapResult {
        let dn = match Dn::parse(dn) {
            Ok(dn) => dn,
            Err(_) => return ldap_result(LdapResultCode::InvalidDNSyntax, "invalid DN"),
        };
        let write = std::sync::Arc::new(write);
        let mut hashed: Option<String> = None;
        for _ in 0..2 {
            let accounts = self.accounts.clone();
            let actor = Actor::Bound(session.identity.clone());
            let (dn2, write2, hashed2) = (dn.clone(), write.clone(), hashed.clone());
            let pass = tokio::task::spawn_blocking(move || {
                run(&accounts, &actor, &dn2, &write2, hashed2.as_deref())
            })
            .await;
            match pass {
                Ok(Ok(Progress::Done(summary))) => {
                    let by = match &session.identity {
                        Identity::User { username, .. } => username.as_str(),
                        Identity::Anonymous => "",
                    };
                    tracing::info!(target: "portcullis::audit", by, peer = %session.peer, "{summary}");
                    return success();
                }
                Ok(Ok(Progress::NeedsHash(secret))) if hashed.is_none() => {
                    match self.auth.hasher().hash(secret.0).await {
                        Ok(phc) => hashed = Some(phc),
                        Err(e) => {
                            tracing::error!(error = %e, "hashing a password for an LDAP write");
                            return ldap_result(LdapResultCode::Unavailable, "the write failed");
                        }
                    }
                }
                Ok(Ok(Progress::NeedsHash(_))) => break,
                Ok(Err(e)) => return from_write(&e),
                Err(_) => break,
            }
        }
        tracing::error!("an LDAP write did not complete");
        ldap_result(LdapResultCode::Other, "the write failed")
    }
}

fn run(
    accounts: &Accounts,
    who: &Actor,
    dn: &Dn,
    write: &Write,
    hashed: Option<&str>,
) -> Result<Progress, WriteError> {
    match write {
        Write::Add(attrs) => accounts.add(who, dn, attrs, hashed),
        Write::Modify(changes) => accounts.modify(who, dn, changes, hashed),
        Write::Delete => accounts.delete(who, dn),
        Write::Rename {
            new_rdn,
            new_superior,
        } => accounts.rename(who, dn, new_rdn, new_superior.as_deref()),
    }
}

/// The result a client sees for a refused write. Exhaustive: each variant
/// is one code; store failures are logged by `from_store`, never described.
pub(super) fn from_write(e: &WriteError) -> LdapResult {
    use LdapResultCode as C;
    let (code, text) = match e {
        WriteError::NoSuchObject { matched, message } => {
            return LdapResult {
                code: C::NoSuchObject,
                matcheddn: matched.as_ref().map(|d| d.to_string()).unwrap_or_default(),
                message: message.clone(),
                referral: Vec::new(),
            }
        }
        WriteError::InsufficientAccess(m) => (C::InsufficentAccessRights, m),
        WriteError::AlreadyExists(m) => (C::EntryAlreadyExists, m),
        WriteError::NamingViolation(m) => (C::NamingViolation, m),
        WriteError::ObjectClassViolation(m) => (C::ObjectClassViolation, m),
        WriteError::ObjectClassModsProhibited(m) => (C::ObjectClassModsProhibited, m),
        WriteError::UndefinedAttributeType(m) => (C::UndefinedAttributeType, m),
        WriteError::InvalidAttributeSyntax(m) => (C::InvalidAttributeSyntax, m),
        WriteError::InvalidDnSyntax(m) => (C::InvalidDNSyntax, m),
        WriteError::ConstraintViolation(m) => (C::ConstraintViolation, m),
        WriteError::NoSuchAttribute(m) => (C::NoSuchAttribute, m),
        WriteError::AttributeOrValueExists(m) => (C::AttributeOrValueExists, m),
        WriteError::NotAllowedOnNonLeaf(m) => (C::NotAllowedOnNonLeaf, m),
        WriteError::NotAllowedOnRdn(m) => (C::NotALlowedOnRDN, m),
        WriteError::UnwillingToPerform(m) => (C::UnwillingToPerform, m),
        WriteError::ProtocolError(m) => (C::ProtocolError, m),
        WriteError::Store(e) => return from_store(e),
    };
    ldap_result(code, text)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use ldap3_proto::proto::{LdapAttribute, LdapBindCred, LdapBindRequest};

    use super::*;
    use crate::auth::password::Hasher;
    use crate::auth::Authenticator;
    use crate::directory::Directory;
    use crate::ldap::handler::Limits;
    use crate::store::{Member, NewUser, Store};

    fn handler() -> Handler {
        let store = Store::temporary().expect("store");
        let hasher = Hasher::for_tests();
        let admins = store.create_group("admins", None).expect("group");
        let root = store
            .create_user(NewUser {
                username: "root".into(),
                ..NewUser::default()
            })
            .expect("user");
        let phc = hasher.hash_blocking("root-pw").expect("hash");
        store.set_password_hash(root.id, &phc).expect("set");
        store
            .add_member(admins.id, Member::User(root.id))
            .expect("member");
        let base = Dn::parse("dc=example,dc=com").expect("dn");
        let directory = Directory::new(store.clone(), base, "admins", "ldap-search");
        Handler::new(
            directory,
            Authenticator::new(store, hasher),
            Limits {
                size_limit: 0,
                time_limit: None,
            },
        )
    }

    fn bind(dn: &str, pw: &str) -> LdapMsg {
        LdapMsg::new(
            1,
            LdapOp::BindRequest(LdapBindRequest {
                version: 3,
                dn: dn.into(),
                cred: LdapBindCred::Simple(pw.into()),
            }),
        )
    }

    fn code(out: &Outcome) -> LdapResultCode {
        match &out.responses[0].msg().op {
            LdapOp::BindResponse(r) => r.res.code.clone(),
            LdapOp::AddResponse(r) | LdapOp::DelResponse(r) => r.code.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_user_added_with_a_clear_password_binds() {
        let h = handler();
        let mut admin = Session::new(SocketAddr::from(([127, 0, 0, 1], 40000)));
        let out = h
            .handle(
                &mut admin,
                bind("cn=root,ou=users,dc=example,dc=com", "root-pw"),
            )
            .await;
        assert_eq!(code(&out), LdapResultCode::Success);
        let attr = |name: &str, v: &str| LdapAttribute {
            atype: name.into(),
            vals: vec![v.as_bytes().to_vec()],
        };
        let add = LdapMsg::new(
            2,
            LdapOp::AddRequest(LdapAddRequest {
                dn: "cn=carol,ou=users,dc=example,dc=com".into(),
                attributes: vec![
                    attr("objectClass", "inetOrgPerson"),
                    attr("userPassword", "Carol-Tea-Party-9"),
                ],
            }),
        );
        let out = h.handle(&mut admin, add).await;
        assert_eq!(code(&out), LdapResultCode::Success);
        let stored = h
            .directory
            .store()
            .user_by_name("carol")
            .expect("read")
            .and_then(|u| h.directory.store().password_hash(u.id).expect("hash"))
            .expect("a password");
        assert!(stored.starts_with("$argon2id$"), "stored as a hash");

        let mut s = Session::new(SocketAddr::from(([127, 0, 0, 1], 40001)));
        let out = h
            .handle(
                &mut s,
                bind("cn=carol,ou=users,dc=example,dc=com", "Carol-Tea-Party-9"),
            )
            .await;
        assert_eq!(code(&out), LdapResultCode::Success);
        // carol is no admin: her delete is refused, the connection stays.
        // Her own entry, which she reads: 50. root's, which she may not
        // read, is missing for her (it was 50 before issue 16).
        let out = h
            .handle(
                &mut s,
                LdapMsg::new(
                    3,
                    LdapOp::DelRequest("cn=carol,ou=users,dc=example,dc=com".into()),
                ),
            )
            .await;
        assert_eq!(code(&out), LdapResultCode::InsufficentAccessRights);
        let out = h
            .handle(
                &mut s,
                LdapMsg::new(
                    3,
                    LdapOp::DelRequest("cn=root,ou=users,dc=example,dc=com".into()),
                ),
            )
            .await;
        assert_eq!(code(&out), LdapResultCode::NoSuchObject);
        let out = h
            .handle(
                &mut s,
                LdapMsg::new(4, LdapOp::DelRequest("not a dn".into())),
            )
            .await;
        assert_eq!(code(&out), LdapResultCode::InvalidDNSyntax);
    }

    #[test]
    fn errors_map_to_their_codes() {
        let dn = Dn::parse("ou=users,dc=example,dc=com").expect("dn");
        let r = from_write(&WriteError::NoSuchObject {
            matched: Some(dn),
            message: "no such object".into(),
        });
        assert_eq!(r.code, LdapResultCode::NoSuchObject);
        assert_eq!(r.matcheddn, "ou=users,dc=example,dc=com");
        let r = from_write(&WriteError::Store(crate::domain::StoreError::Backend(
            "disk on fire at /secret/path".into(),
        )));
        assert_eq!(r.code, LdapResultCode::Unavailable);
        assert!(!r.message.contains("/secret/path"));
        let r = from_write(&WriteError::NotAllowedOnRdn("x".into()));
        assert_eq!(r.code, LdapResultCode::NotALlowedOnRDN);
    }
}
