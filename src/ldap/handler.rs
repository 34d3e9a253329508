//! The operation handler: a state machine that does no I/O.
//!
//! `Handler::handle` takes one request and the connection's `Session` and
//! returns the messages to send plus what the connection should do next,
//! so every operation can be tested without sockets.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapExtendedResponse, LdapFilter, LdapMsg, LdapOp, LdapResultCode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::codec::Outgoing;
use super::paging::{PagedBudget, PagingStates};
use super::result::ldap_result;
use crate::account::Accounts;
use crate::auth::Authenticator;
use crate::config::RequireTls;
use crate::directory::entry::Requested;
use crate::directory::{Directory, Dn, DnError, Filter, Identity};

/// Per-connection state. Operations that run concurrently get a clone:
/// the identity only changes in bind, which waits for them (RFC 4511
/// §4.2.1), and the paging table is shared between the clones.
#[derive(Clone)]
pub struct Session {
    /// Who the connection is bound as.
    pub identity: Identity,
    /// The client's address, for audit logs and (later) throttling.
    pub peer: SocketAddr,
    /// Open Simple Paged Results searches of this connection.
    pub paging: PagingStates,
    /// The connection is TLS (LDAPS, or after StartTLS).
    pub encrypted: bool,
    /// The connection's reader runs the current operation itself (a
    /// search [`Handler::search_runs_inline`] said costs microseconds): it
    /// runs where it is, not on a blocking thread.
    pub on_reader: bool,
    /// The base of the search the reader runs itself, as
    /// [`Handler::search_runs_inline`] parsed it; set for that one search
    /// only (the connection clears it after), which takes it instead of
    /// parsing the base again.
    pub inline_base: Option<Arc<Dn>>,
    /// The base DNs this connection's searches named lately, parsed.
    pub bases: Recent<str, Dn>,
    /// The attribute lists this connection's searches sent lately, parsed.
    pub attr_lists: Recent<[String], Requested>,
    /// The filters this connection's searches sent lately, converted.
    pub filters: Recent<LdapFilter, Filter>,
}

/// How many of each kind [`Recent`] keeps.
const KEPT_RECENT: usize = 4;

/// What a connection's searches sent lately, parsed: a client sends the
/// same few base DNs (the base, `ou=users`, `ou=groups`), attribute lists
/// and often filters on every search, and parsing them was some 6% of a
/// lookup's CPU. Kept by what was sent, at most [`KEPT_RECENT`]; the
/// oldest goes first. Only what is sent again is kept: a text seen once
/// (a user's own DN as the base, a filter naming one user) leaves a hash
/// among the last few misses, so a connection naming a new user on every
/// search does not pay for copying each one in and out. An operation that
/// runs as a task of its own starts with none (a copy is not worth its
/// allocations).
pub struct Recent<K: ?Sized + ToOwned, V> {
    kept: Vec<(K::Owned, Arc<V>)>,
    /// Hashes of the last texts parsed and not kept, the newest at
    /// `next_miss - 1` (wrapping).
    misses: [u64; KEPT_RECENT],
    next_miss: usize,
}

impl<K: ?Sized + ToOwned, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            kept: Vec::new(),
            misses: [0; KEPT_RECENT],
            next_miss: 0,
        }
    }
}

impl<K: ?Sized + ToOwned, V> Clone for Recent<K, V> {
    fn clone(&self) -> Self {
        Recent::default()
    }
}

impl<K: ?Sized + ToOwned + PartialEq + std::hash::Hash, V> Recent<K, V> {
    /// What `parse` makes of `sent`, kept when this connection sent the
    /// same lately.
    pub fn get<E>(
        &mut self,
        sent: &K,
        parse: impl FnOnce(&K) -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        if let Some(kept) = self.kept(sent) {
            return Ok(kept);
        }
        Ok(self.admit(sent, parse(sent)?))
    }

    /// [`Recent::get`] for a parse that cannot fail.
    pub fn get_with(&mut self, sent: &K, parse: impl FnOnce(&K) -> V) -> Arc<V> {
        match self.kept(sent) {
            Some(kept) => kept,
            None => self.admit(sent, parse(sent)),
        }
    }

    /// What was kept for `sent`.
    fn kept(&self, sent: &K) -> Option<Arc<V>> {
        use std::borrow::Borrow;
        let (_, v) = self.kept.iter().find(|(kept, _)| kept.borrow() == sent)?;
        Some(v.clone())
    }

    /// `v`, parsed from `sent`, kept when `sent` missed lately too.
    fn admit(&mut self, sent: &K, v: V) -> Arc<V> {
        use std::hash::BuildHasher;
        let v = Arc::new(v);
        // Zero marks an empty slot; a text hashing to it is never kept.
        let hash = rustc_hash::FxBuildHasher.hash_one(sent);
        if hash == 0 || !self.misses.contains(&hash) {
            if let Some(slot) = self.misses.get_mut(self.next_miss % KEPT_RECENT) {
                *slot = hash;
            }
            self.next_miss = self.next_miss.wrapping_add(1);
            return v;
        }
        if self.kept.len() >= KEPT_RECENT {
            self.kept.remove(0);
        }
        self.kept.push((sent.to_owned(), v.clone()));
        v
    }
}

impl Recent<str, Dn> {
    /// `text` parsed as a DN. A DN below a parent this connection names
    /// often (a user's own DN, read with a base-scope search) has only its
    /// leftmost RDN parsed: the parent is kept like any base.
    pub fn parse(&mut self, text: &str) -> Result<Arc<Dn>, DnError> {
        if let Some(kept) = self.kept(text) {
            return Ok(kept);
        }
        let dn = match Dn::split_leaf(text) {
            Some((leaf, parent)) => match self.get(parent, Dn::parse) {
                Ok(parent) => parent.child_rdn(leaf),
                // Refused as a whole, with the whole DN's message.
                Err(_) => Dn::parse(text)?,
            },
            None => Dn::parse(text)?,
        };
        Ok(self.admit(text, dn))
    }
}

impl Recent<LdapFilter, Filter> {
    /// A search's filter converted ([`Filter::from_ldap`]).
    pub fn convert(&mut self, sent: &LdapFilter) -> Arc<Filter> {
        self.get_with(sent, Filter::from_ldap)
    }
}

impl Recent<[String], Requested> {
    /// A search's attribute list parsed ([`Requested::parse`]).
    pub fn parse(&mut self, attrs: &[String]) -> Arc<Requested> {
        self.get_with(attrs, Requested::parse)
    }
}

impl Session {
    /// A session whose paged searches have a budget of their own (tests);
    /// connections get [`Handler::session`].
    pub fn new(peer: SocketAddr) -> Session {
        Session {
            identity: Identity::Anonymous,
            peer,
            paging: PagingStates::default(),
            encrypted: false,
            on_reader: false,
            inline_base: None,
            bases: Recent::default(),
            attr_lists: Recent::default(),
            filters: Recent::default(),
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
    pub responses: Vec<Outgoing>,
    /// Responses still being produced, sent after `responses` as they
    /// come (a search's entries, encoded in batches on the thread that
    /// builds them, and its searchResultDone): a large answer is never
    /// held whole.
    pub stream: Option<mpsc::Receiver<Outgoing>>,
    pub next: Next,
}

impl Outcome {
    pub fn one(msg: LdapMsg) -> Outcome {
        Outcome {
            responses: vec![msg.into()],
            stream: None,
            next: Next::Continue,
        }
    }
    pub fn many(responses: Vec<LdapMsg>) -> Outcome {
        Outcome::sending(responses.into_iter().map(Outgoing::from).collect())
    }
    /// Responses some of which may be encoded already.
    pub fn sending(responses: Vec<Outgoing>) -> Outcome {
        Outcome {
            responses,
            stream: None,
            next: Next::Continue,
        }
    }
    pub fn none() -> Outcome {
        Outcome {
            responses: Vec::new(),
            stream: None,
            next: Next::Continue,
        }
    }
    pub fn close(responses: Vec<LdapMsg>) -> Outcome {
        Outcome {
            responses: responses.into_iter().map(Outgoing::from).collect(),
            stream: None,
            next: Next::Close,
        }
    }
    /// Responses produced by another thread as it goes.
    pub fn streaming(stream: mpsc::Receiver<Outgoing>) -> Outcome {
        Outcome {
            responses: Vec::new(),
            stream: Some(stream),
            next: Next::Continue,
        }
    }
    /// Waits for the rest of a streamed answer and appends it to
    /// `responses`.
    pub async fn collected(mut self) -> Outcome {
        if let Some(mut stream) = self.stream.take() {
            while let Some(response) = stream.recv().await {
                self.responses.push(response);
            }
        }
        self
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

/// When a simple bind with a password is refused with
/// confidentialityRequired (13) for lack of TLS (RFC 4513 §5.1.3 leaves the
/// policy to the server; `ldap.require_tls_for_bind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confidentiality {
    pub policy: RequireTls,
    /// The address the plain listener is bound to; `auto` allows cleartext
    /// passwords only when it is a loopback address.
    pub plain_listener: IpAddr,
}

impl Confidentiality {
    /// True when a password bind over a connection with `encrypted` must be
    /// refused. An unspecified address (0.0.0.0, ::) is not loopback.
    pub fn refuses_cleartext(&self, encrypted: bool) -> bool {
        if encrypted {
            return false;
        }
        match self.policy {
            RequireTls::Never => false,
            RequireTls::Always => true,
            RequireTls::Auto => !self.plain_listener.to_canonical().is_loopback(),
        }
    }
}

/// Everything an operation needs; shared by all connections.
#[derive(Clone)]
pub struct Handler {
    pub directory: Directory,
    pub auth: Authenticator,
    /// Every change (writes, Password Modify) goes through here.
    pub accounts: Accounts,
    pub limits: Limits,
    pub confidentiality: Confidentiality,
    /// What paged searches may keep, over all connections
    /// (`ldap.paged_results_max_bytes`, `ldap.paged_results_idle_secs`).
    pub paged: PagedBudget,
}

impl Handler {
    pub fn new(directory: Directory, auth: Authenticator, limits: Limits) -> Handler {
        Handler {
            accounts: Accounts::new(directory.clone(), auth.clone()),
            directory,
            auth,
            limits,
            // `auto` on loopback until the server says where it listens.
            confidentiality: Confidentiality {
                policy: RequireTls::Auto,
                plain_listener: IpAddr::from([127, 0, 0, 1]),
            },
            paged: PagedBudget::default(),
        }
    }

    /// The state of a new connection from `peer`: anonymous, its paged
    /// searches drawing on the server's budget.
    pub fn session(&self, peer: SocketAddr) -> Session {
        Session {
            paging: self.paged.states(),
            ..Session::new(peer)
        }
    }

    /// Handles one request; its responses are all in `responses`.
    pub async fn handle(&self, session: &mut Session, msg: LdapMsg) -> Outcome {
        self.handle_until(session, msg, &CancellationToken::new())
            .await
            .collected()
            .await
    }

    /// Handles one request; a search stops early once `stop` is cancelled
    /// (Abandon), and its partial answer is then not worth sending.
    pub async fn handle_until(
        &self,
        session: &mut Session,
        msg: LdapMsg,
        stop: &CancellationToken,
    ) -> Outcome {
        // Blocking calls inside are bugs (debug builds panic): store
        // writes and hashes go to their pools.
        crate::blocking::on_reactor(self.dispatch(session, msg, stop)).await
    }

    async fn dispatch(
        &self,
        session: &mut Session,
        msg: LdapMsg,
        stop: &CancellationToken,
    ) -> Outcome {
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
        // Only the search (and the small compare) is awaited in place: a
        // future is as large as its largest arm and is copied whole each
        // time it is handed down (this one, the connection's and the
        // task's), so the larger, rarer operations are boxed; a lookup
        // copied some 25 KB of futures before (5% of its CPU).
        match op {
            LdapOp::BindRequest(req) => Box::pin(self.bind(session, msgid, req)).await,
            LdapOp::UnbindRequest => Outcome::close(Vec::new()),
            LdapOp::SearchRequest(req) => self.search(session, msgid, req, ctrl, stop).await,
            LdapOp::CompareRequest(req) => self.compare(session, msgid, req).await,
            LdapOp::ExtendedRequest(req) => Box::pin(self.extended(session, msgid, req)).await,
            // The connection loop cancels the operation; here (no
            // connection) there is nothing to cancel. RFC 4511 §4.11: no
            // response either way.
            LdapOp::AbandonRequest(_) => Outcome::none(),
            LdapOp::AddRequest(req) => Box::pin(self.add(session, msgid, req)).await,
            LdapOp::ModifyRequest(req) => Box::pin(self.modify(session, msgid, req)).await,
            LdapOp::DelRequest(dn) => Box::pin(self.delete(session, msgid, dn)).await,
            LdapOp::ModifyDNRequest(req) => Box::pin(self.modify_dn(session, msgid, req)).await,
            // A client sending responses is not speaking LDAP to us.
            _ => Outcome::close(vec![notice_of_disconnection(
                LdapResultCode::ProtocolError,
                "a client may send only requests",
            )]),
        }
    }
}

/// The OID of the first critical control the server does not implement for
/// this operation (RFC 4511 §4.1.11).
pub(super) fn unsupported_critical(ctrl: &[LdapControl], op: &LdapOp) -> Option<String> {
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
pub(super) fn reject(msgid: i32, op: &LdapOp, code: LdapResultCode, message: &str) -> LdapMsg {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts `recent` keeps, oldest first.
    fn kept_texts(recent: &Recent<str, Dn>) -> Vec<&str> {
        recent.kept.iter().map(|(text, _)| text.as_str()).collect()
    }

    /// A base named a second time is kept (the first sighting leaves only
    /// a hash) and named again is the one parsed before; so is the parent
    /// it was parsed below; the oldest of more than [`KEPT_RECENT`] goes;
    /// a DN that does not parse is refused each time and kept by nobody.
    #[test]
    fn parsed_bases_keep_the_latest_few() {
        let mut bases = Recent::<str, Dn>::default();
        let twice = |bases: &mut Recent<str, Dn>, dn: &str| {
            bases.parse(dn).expect("dn");
            bases.parse(dn).expect("dn")
        };
        let once = bases.parse("dc=example,dc=com").expect("dn");
        assert!(bases.kept.is_empty(), "seen once: not kept");
        let first = bases.parse("dc=example,dc=com").expect("dn");
        assert!(!Arc::ptr_eq(&once, &first));
        assert_eq!(kept_texts(&bases), ["dc=com", "dc=example,dc=com"]);
        let again = bases.parse("dc=example,dc=com").expect("dn");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(again.normalized_str(), "dc=example,dc=com");
        // The text as sent is the key: another spelling parses alike.
        let spaced = twice(&mut bases, "DC=Example, dc=com");
        assert!(!Arc::ptr_eq(&first, &spaced));
        assert_eq!(*spaced, *first);
        assert!(bases.parse("not a dn").is_err());
        assert!(bases.parse("not a dn").is_err());
        assert_eq!(bases.kept.len(), 3);
        for ou in ["a", "b", "c"] {
            twice(&mut bases, &format!("ou={ou},dc=example,dc=com"));
        }
        assert_eq!(
            kept_texts(&bases),
            [
                "DC=Example, dc=com",
                "ou=a,dc=example,dc=com",
                "ou=b,dc=example,dc=com",
                "ou=c,dc=example,dc=com"
            ]
        );
        let refreshed = bases.parse("dc=example,dc=com").expect("dn");
        assert!(!Arc::ptr_eq(&first, &refreshed), "the oldest went");
        assert!(bases.clone().kept.is_empty());
    }

    /// DNs below a parent the connection names often parse as a whole
    /// parse does, and the parent is kept; what does not parse is refused.
    #[test]
    fn leaves_below_a_kept_parent_parse_as_a_whole() {
        let mut bases = Recent::<str, Dn>::default();
        for i in 0..20 {
            let text = format!("UID=User{i},ou=users, dc=example,dc=com");
            let dn = bases.parse(&text).expect("dn");
            let whole = Dn::parse(&text).expect("dn");
            assert_eq!(dn.normalized_str(), whole.normalized_str());
            assert_eq!(dn.to_string(), whole.to_string());
        }
        assert_eq!(bases.kept.len(), 1);
        assert_eq!(
            bases.kept.first().map(|(text, _)| text.as_str()),
            Some("ou=users, dc=example,dc=com")
        );
        for bad in [
            "uid=x,",
            "uid=x,ou=users,",
            "uid=x,ou=users,dc=example,dc=com,",
        ] {
            assert!(bases.parse(bad).is_err(), "{bad}");
            assert!(bases.parse(bad).is_err(), "{bad}");
        }
    }

    /// A connection naming another user on every search keeps none of
    /// them (only their parent); two bases taking turns are both kept.
    #[test]
    fn what_is_sent_once_is_not_kept() {
        let mut bases = Recent::<str, Dn>::default();
        for i in 0..100 {
            let dn = format!("uid=user{i:05},ou=users,dc=example,dc=com");
            assert_eq!(bases.parse(&dn).expect("dn").to_string(), dn);
        }
        assert_eq!(kept_texts(&bases), ["ou=users,dc=example,dc=com"]);
        for _ in 0..2 {
            bases.parse("dc=example,dc=com").expect("dn");
            bases.parse("ou=groups,dc=example,dc=com").expect("dn");
        }
        let kept = kept_texts(&bases);
        assert!(kept.contains(&"dc=example,dc=com"), "{kept:?}");
        assert!(kept.contains(&"ou=groups,dc=example,dc=com"), "{kept:?}");
    }

    /// A filter sent again is the one converted before, and converts as
    /// a fresh conversion does.
    #[test]
    fn converted_filters_are_kept_by_the_filter_sent() {
        let mut filters = Recent::<LdapFilter, Filter>::default();
        let member_of = LdapFilter::Equality(
            "memberOf".into(),
            "cn=group001,ou=groups,dc=example,dc=com".into(),
        );
        filters.convert(&member_of);
        let kept = filters.convert(&member_of);
        assert!(Arc::ptr_eq(&kept, &filters.convert(&member_of)));
        assert_eq!(
            format!("{:?}", *kept),
            format!("{:?}", Filter::from_ldap(&member_of))
        );
        let other = LdapFilter::Equality(
            "memberOf".into(),
            "cn=group002,ou=groups,dc=example,dc=com".into(),
        );
        let converted = filters.convert(&other);
        assert_eq!(
            format!("{:?}", *converted),
            format!("{:?}", Filter::from_ldap(&other))
        );
        assert_ne!(format!("{:?}", *converted), format!("{:?}", *kept));
    }

    #[test]
    fn parsed_attribute_lists_are_kept_by_the_list_sent() {
        let mut lists = Recent::<[String], Requested>::default();
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        lists.parse(&list(&["cn", "mail"]));
        let first = lists.parse(&list(&["cn", "mail"]));
        assert!(Arc::ptr_eq(&first, &lists.parse(&list(&["cn", "mail"]))));
        let other = lists.parse(&list(&["cn"]));
        assert!(!Arc::ptr_eq(&first, &other));
        let mail = crate::directory::schema::attribute("mail").expect("schema");
        assert!(first.keeps(mail));
        assert!(!other.keeps(mail));
    }
}
