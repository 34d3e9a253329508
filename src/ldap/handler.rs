//! The operation handler: a state machine that does no I/O.
//!
//! `Handler::handle` takes one request and the connection's `Session` and
//! returns the messages to send plus what the connection should do next,
//! so every operation can be tested without sockets.

use std::net::SocketAddr;
use std::time::Duration;

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapExtendedResponse, LdapMsg, LdapOp, LdapResultCode};

use super::paging::PagingStates;
use super::result::ldap_result;
use crate::auth::Authenticator;
use crate::directory::{Directory, Identity};

/// Per-connection state.
pub struct Session {
    /// Who the connection is bound as.
    pub identity: Identity,
    /// The client's address, for audit logs and (later) throttling.
    pub peer: SocketAddr,
    /// Open Simple Paged Results searches of this connection.
    pub paging: PagingStates,
}

impl Session {
    pub fn new(peer: SocketAddr) -> Session {
        Session {
            identity: Identity::Anonymous,
            peer,
            paging: PagingStates::default(),
        }
    }
}

/// What the connection loop does after sending `responses`.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Close the connection (unbind, protocol violation).
    Close,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Outcome {
    pub responses: Vec<LdapMsg>,
    pub next: Next,
}

impl Outcome {
    pub fn one(msg: LdapMsg) -> Outcome {
        Outcome {
            responses: vec![msg],
            next: Next::Continue,
        }
    }
    pub fn many(responses: Vec<LdapMsg>) -> Outcome {
        Outcome {
            responses,
            next: Next::Continue,
        }
    }
    pub fn none() -> Outcome {
        Outcome {
            responses: Vec::new(),
            next: Next::Continue,
        }
    }
    pub fn close(responses: Vec<LdapMsg>) -> Outcome {
        Outcome {
            responses,
            next: Next::Close,
        }
    }
}

/// Server-side limits applied to every search.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Entries per search (0 = none).
    pub size_limit: usize,
    /// Time per search (None = none).
    pub time_limit: Option<Duration>,
}

/// Everything an operation needs; shared by all connections.
#[derive(Clone)]
pub struct Handler {
    pub directory: Directory,
    pub auth: Authenticator,
    pub limits: Limits,
}

impl Handler {
    pub fn new(directory: Directory, auth: Authenticator, limits: Limits) -> Handler {
        Handler {
            directory,
            auth,
            limits,
        }
    }

    /// Handles one request.
    pub async fn handle(&self, session: &mut Session, msg: LdapMsg) -> Outcome {
        let LdapMsg { msgid, op, ctrl } = msg;
        if let Some(oid) = unsupported_critical(&ctrl, &op) {
            tracing::debug!(%oid, "unsupported critical control");
            return Outcome::one(reject(
                msgid,
                &op,
                LdapResultCode::UnavailableCriticalExtension,
                "critical control not supported",
            ));
        }
        match op {
            LdapOp::BindRequest(req) => self.bind(session, msgid, req).await,
            LdapOp::UnbindRequest => Outcome::close(Vec::new()),
            LdapOp::SearchRequest(req) => self.search(session, msgid, req, ctrl).await,
            LdapOp::CompareRequest(req) => self.compare(session, msgid, req).await,
            LdapOp::ExtendedRequest(req) => self.extended(session, msgid, req).await,
            // Nothing runs concurrently within a connection yet, so there is
            // never an operation to abandon; RFC 4511 §4.11: no response.
            LdapOp::AbandonRequest(_) => Outcome::none(),
            LdapOp::AddRequest(_) => {
                Outcome::one(LdapMsg::new(msgid, LdapOp::AddResponse(read_only())))
            }
            LdapOp::ModifyRequest(_) => {
                Outcome::one(LdapMsg::new(msgid, LdapOp::ModifyResponse(read_only())))
            }
            LdapOp::DelRequest(_) => {
                Outcome::one(LdapMsg::new(msgid, LdapOp::DelResponse(read_only())))
            }
            LdapOp::ModifyDNRequest(_) => {
                Outcome::one(LdapMsg::new(msgid, LdapOp::ModifyDNResponse(read_only())))
            }
            // A client sending responses is not speaking LDAP to us.
            _ => Outcome::close(vec![notice_of_disconnection(
                LdapResultCode::ProtocolError,
                "a client may send only requests",
            )]),
        }
    }
}

fn read_only() -> ldap3_proto::proto::LdapResult {
    ldap_result(
        LdapResultCode::UnwillingToPerform,
        "writes over LDAP are not supported; use the portcullis CLI",
    )
}

/// The OID of the first critical control the server does not implement for
/// this operation (RFC 4511 §4.1.11).
fn unsupported_critical(ctrl: &[LdapControl], op: &LdapOp) -> Option<String> {
    for c in ctrl {
        match c {
            LdapControl::SimplePagedResults { .. } if matches!(op, LdapOp::SearchRequest(_)) => {}
            // No referrals are ever returned, so ManageDsaIT is honoured.
            LdapControl::ManageDsaIT { .. } => {}
            LdapControl::Unknown {
                oid, criticality, ..
            } if *criticality => return Some(oid.clone()),
            LdapControl::SyncRequest { criticality, .. }
            | LdapControl::PasswordPolicyRequest { criticality }
            | LdapControl::SearchOptions { criticality, .. }
            | LdapControl::ShowDeleted { criticality }
            | LdapControl::SdFlags { criticality, .. }
            | LdapControl::ExtendedDn { criticality, .. }
                if *criticality =>
            {
                return Some(format!("{c:?}"));
            }
            _ => {}
        }
    }
    None
}

/// The response of the right type for `op` carrying `code`.
fn reject(msgid: i32, op: &LdapOp, code: LdapResultCode, message: &str) -> LdapMsg {
    let res = ldap_result(code, message);
    let op = match op {
        LdapOp::BindRequest(_) => LdapOp::BindResponse(ldap3_proto::proto::LdapBindResponse {
            res,
            saslcreds: None,
        }),
        LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(res),
        LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(res),
        LdapOp::AddRequest(_) => LdapOp::AddResponse(res),
        LdapOp::DelRequest(_) => LdapOp::DelResponse(res),
        LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(res),
        LdapOp::CompareRequest(_) => LdapOp::CompareResult(res),
        _ => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: None,
            value: None,
        }),
    };
    LdapMsg::new(msgid, op)
}

/// RFC 4511 §4.4.1: an unsolicited notification (message ID 0) sent before
/// the server closes a connection on its own.
pub fn notice_of_disconnection(code: LdapResultCode, message: &str) -> LdapMsg {
    LdapMsg::new(
        0,
        LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: ldap_result(code, message),
            name: Some(super::OID_NOTICE_OF_DISCONNECTION.to_string()),
            value: None,
        }),
    )
}
