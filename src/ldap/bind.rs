//! Simple bind (RFC 4511 §4.2, RFC 4513 §5.1). The decision itself is
//! `auth::Authenticator::authenticate`; this file maps DNs and result codes
//! and writes the audit event.

use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapMsg, LdapOp, LdapResultCode,
};

use super::codec::UnreadableBind;
use super::handler::{reject, unsupported_critical, Handler, Outcome, Session};
use super::result::{ldap_result, success};
use crate::auth::{BindOutcome, Refusal, Secret};
use crate::directory::{tree, Dn, Identity, Target};

/// The one text every refused bind gets (DESIGN.md section 4).
const INVALID_CREDENTIALS: &str = "invalid credentials";

/// The credentials of a bind request.
enum Cred {
    /// Simple (RFC 4511 §4.2): a password, possibly empty.
    Password(Secret),
    /// Simple, with a password that is not UTF-8: a wrong password.
    Unreadable,
    /// SASL or an unknown authentication choice.
    Other,
}

impl Handler {
    pub(super) async fn bind(
        &self,
        session: &mut Session,
        msgid: i32,
        req: LdapBindRequest,
    ) -> Outcome {
        let cred = match req.cred {
            LdapBindCred::Simple(pw) => Cred::Password(Secret(pw)),
            LdapBindCred::SASL(_) | LdapBindCred::Unsupported => Cred::Other,
        };
        self.simple_bind(session, msgid, req.version, req.dn, cred)
            .await
    }

    /// A simple bind whose password is not UTF-8: refused like any wrong
    /// password (invalidCredentials, audited, throttled, after the same
    /// hashing cost), not as a protocol error.
    pub async fn unreadable_bind(&self, session: &mut Session, req: UnreadableBind) -> Outcome {
        let op = LdapOp::BindRequest(LdapBindRequest {
            version: req.version,
            dn: String::new(),
            cred: LdapBindCred::Unsupported,
        });
        if let Some(oid) = unsupported_critical(&req.ctrl, &op) {
            tracing::debug!(%oid, "unsupported critical control");
            return Outcome::one(reject(
                req.msgid,
                &op,
                LdapResultCode::UnavailableCriticalExtension,
                "critical control not supported",
            ));
        }
        crate::blocking::on_reactor(self.simple_bind(
            session,
            req.msgid,
            req.version,
            req.dn,
            Cred::Unreadable,
        ))
        .await
    }

    async fn simple_bind(
        &self,
        session: &mut Session,
        msgid: i32,
        version: i64,
        dn: String,
        cred: Cred,
    ) -> Outcome {
        // RFC 4511 §4.2.1: a failed or new bind leaves the connection
        // anonymous until it succeeds.
        session.identity = Identity::Anonymous;
        session.paging.clear();
        let respond = |code, message: &str| {
            Outcome::one(LdapMsg::new(
                msgid,
                LdapOp::BindResponse(LdapBindResponse {
                    res: ldap_result(code, message),
                    saslcreds: None,
                }),
            ))
        };
        // RFC 4513 §5.1.3 / `ldap.require_tls_for_bind`: no cleartext
        // passwords where the policy forbids them (anonymous binds pass).
        let cleartext = match &cred {
            Cred::Password(pw) => !pw.0.is_empty(),
            Cred::Unreadable => true,
            Cred::Other => false,
        };
        if cleartext && self.confidentiality.refuses_cleartext(session.encrypted) {
            tracing::info!(target: "portcullis::audit", dn = ?dn, peer = %session.peer, method = "password", outcome = "refused", reason = "confidentiality required", "bind");
            return respond(
                LdapResultCode::ConfidentialityRequired,
                "a password bind requires TLS (use LDAPS or StartTLS)",
            );
        }
        if version != 3 {
            return respond(LdapResultCode::ProtocolError, "only LDAPv3 is supported");
        }
        // `None`: a password that is not UTF-8 (never empty).
        let password = match cred {
            Cred::Password(pw) => Some(pw),
            Cred::Unreadable => None,
            Cred::Other => {
                return respond(
                    LdapResultCode::AuthMethodNotSupported,
                    "only simple bind is supported",
                )
            }
        };
        let empty = password.as_ref().is_some_and(|pw| pw.0.is_empty());
        let peer = session.peer;
        if dn.is_empty() {
            if empty {
                tracing::info!(target: "portcullis::audit", user = "", %peer, method = "anonymous", outcome = "success", "bind");
                return Outcome::one(LdapMsg::new(
                    msgid,
                    LdapOp::BindResponse(LdapBindResponse {
                        res: success(),
                        saslcreds: None,
                    }),
                ));
            }
            tracing::info!(target: "portcullis::audit", user = "", %peer, method = "password", outcome = "refused", reason = "password without a DN", "bind");
            return respond(LdapResultCode::InvalidCredentials, INVALID_CREDENTIALS);
        }
        if empty {
            // RFC 4513 §5.1.2: unauthenticated binds are refused.
            tracing::info!(target: "portcullis::audit", dn = ?dn, %peer, method = "unauthenticated", outcome = "refused", reason = "empty password", "bind");
            return respond(
                LdapResultCode::UnwillingToPerform,
                "unauthenticated bind (a DN with an empty password) is not allowed",
            );
        }
        let parsed = match Dn::parse(&dn) {
            Ok(dn) => dn,
            Err(_) => return respond(LdapResultCode::InvalidDNSyntax, "invalid DN"),
        };
        let username = match tree::classify(&parsed, self.directory.base()) {
            Target::User(name) => name,
            // A DN that cannot be a user costs the same as a wrong password.
            _ => String::new(),
        };
        // A DN that cannot be a user (empty name) goes through the same
        // decision as an unknown user: throttled, and costing one argon2.
        let now = std::time::SystemTime::now();
        let outcome = match &password {
            Some(password) => {
                self.auth
                    .authenticate(&username, password, peer.ip(), now)
                    .await
            }
            None => {
                self.auth
                    .authenticate_unreadable(&username, peer.ip(), now)
                    .await
            }
        };
        match outcome {
            BindOutcome::Success {
                user,
                method,
                app_password,
                cached,
            } => {
                tracing::info!(target: "portcullis::audit", user = %user.username, %peer, method = method.as_str(), app_password = app_password.as_deref(), cached, outcome = "success", "bind");
                session.identity = Identity::User {
                    id: user.id,
                    username: user.username.clone(),
                };
                respond(LdapResultCode::Success, "")
            }
            // A bounded hashing queue: a flood is answered busy, not queued.
            // Only binds that need a hash get here; cache hits and app
            // passwords are answered during the flood.
            BindOutcome::Refused {
                reason: Refusal::Busy,
                ..
            } => {
                static BUSY: crate::quiet::Every = crate::quiet::Every::new();
                if let Some(left_out) = BUSY.line() {
                    tracing::warn!(%peer, left_out, "password hashing queue full; bind answered busy (left_out: others since the last line)");
                }
                respond(LdapResultCode::Busy, "the server is busy; try again")
            }
            // The store could not decide (a shared database unreachable
            // for a bind that must read or write it: a code, an app
            // password): refused, but as a failure of the server, so a
            // client tries again rather than believing the password wrong.
            BindOutcome::Refused {
                reason: Refusal::Internal,
                method,
            } => {
                tracing::info!(target: "portcullis::audit", dn = ?dn, %peer, method = method.as_str(), outcome = "refused", reason = Refusal::Internal.as_str(), "bind");
                respond(
                    LdapResultCode::Unavailable,
                    "the directory is unavailable; try again",
                )
            }
            BindOutcome::Refused { reason, method } => {
                tracing::info!(target: "portcullis::audit", dn = ?dn, %peer, method = method.as_str(), outcome = "refused", reason = reason.as_str(), "bind");
                respond(LdapResultCode::InvalidCredentials, INVALID_CREDENTIALS)
            }
        }
    }
}
