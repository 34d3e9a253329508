//! Simple bind (RFC 4511 §4.2, RFC 4513 §5.1). The decision itself is
//! `auth::Authenticator::authenticate`; this file maps DNs and result codes
//! and writes the audit event.

use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapMsg, LdapOp, LdapResultCode,
};

use super::handler::{Handler, Outcome, Session};
use super::result::{ldap_result, success};
use crate::auth::{BindOutcome, Refusal, Secret};
use crate::directory::{tree, Dn, Identity, Target};

/// The one text every refused bind gets (DESIGN.md section 4).
const INVALID_CREDENTIALS: &str = "invalid credentials";

impl Handler {
    pub(super) async fn bind(
        &self,
        session: &mut Session,
        msgid: i32,
        req: LdapBindRequest,
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
        if matches!(&req.cred, LdapBindCred::Simple(pw) if !pw.is_empty())
            && self.confidentiality.refuses_cleartext(session.encrypted)
        {
            tracing::info!(target: "portcullis::audit", dn = ?req.dn, peer = %session.peer, method = "password", outcome = "refused", reason = "confidentiality required", "bind");
            return respond(
                LdapResultCode::ConfidentialityRequired,
                "a password bind requires TLS (use LDAPS or StartTLS)",
            );
        }
        if req.version != 3 {
            return respond(LdapResultCode::ProtocolError, "only LDAPv3 is supported");
        }
        let password = match req.cred {
            LdapBindCred::Simple(pw) => Secret(pw),
            LdapBindCred::SASL(_) | LdapBindCred::Unsupported => {
                return respond(
                    LdapResultCode::AuthMethodNotSupported,
                    "only simple bind is supported",
                )
            }
        };
        let peer = session.peer;
        if req.dn.is_empty() {
            if password.0.is_empty() {
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
        if password.0.is_empty() {
            // RFC 4513 §5.1.2: unauthenticated binds are refused.
            tracing::info!(target: "portcullis::audit", dn = ?req.dn, %peer, method = "unauthenticated", outcome = "refused", reason = "empty password", "bind");
            return respond(
                LdapResultCode::UnwillingToPerform,
                "unauthenticated bind (a DN with an empty password) is not allowed",
            );
        }
        let dn = match Dn::parse(&req.dn) {
            Ok(dn) => dn,
            Err(_) => return respond(LdapResultCode::InvalidDNSyntax, "invalid DN"),
        };
        let username = match tree::classify(&dn, self.directory.base()) {
            Target::User(name) => name,
            // A DN that cannot be a user costs the same as a wrong password.
            _ => String::new(),
        };
        // A DN that cannot be a user (empty name) goes through the same
        // decision as an unknown user: throttled, and costing one argon2.
        let outcome = self
            .auth
            .authenticate(
                &username,
                &password,
                peer.ip(),
                std::time::SystemTime::now(),
            )
            .await;
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
                    username: user.username,
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
                tracing::warn!(%peer, "password hashing queue full; bind answered busy");
                respond(LdapResultCode::Busy, "the server is busy; try again")
            }
            BindOutcome::Refused { reason, method } => {
                tracing::info!(target: "portcullis::audit", dn = ?req.dn, %peer, method = method.as_str(), outcome = "refused", reason = reason.as_str(), "bind");
                respond(LdapResultCode::InvalidCredentials, INVALID_CREDENTIALS)
            }
        }
    }
}
