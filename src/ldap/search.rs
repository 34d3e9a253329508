//! Search (RFC 4511 §4.5): base resolution, root DSE and subschema, size
//! and time limits, attribute selection and Simple Paged Results.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapFilter, LdapMsg, LdapOp, LdapPartialAttribute, LdapResult, LdapResultCode,
    LdapSearchRequest, LdapSearchResultEntry, LdapSearchScope,
};
use tokio::sync::mpsc;

use super::codec::{
    encode_attr, encode_entry_attrs_encoded, encode_entry_parts, entry_header, entry_op_parts,
    AttrRef, Outgoing,
};
use super::handler::{Handler, Outcome, Session};
use super::paging::{Held, OverBudget};
use super::result::{from_directory, ldap_result, success};
use crate::directory::entry::{root_dse, subschema_entry, AttrSink, Pushed, Requested, Wanted};
use crate::directory::filter::NoChain;
use crate::directory::schema::AttributeType;
use crate::directory::search::CachedGroup;
use crate::directory::{Dn, Entry, Filter, Scope, SearchItem, SearchQuery, Target, UserEntry};

/// Controls announced in the root DSE.
pub const SUPPORTED_CONTROLS: &[&str] = &[super::OID_PAGED_RESULTS];
/// Extended operations announced in the root DSE.
pub const SUPPORTED_EXTENSIONS: &[&str] = &[
    super::OID_WHOAMI,
    super::OID_PASSWORD_MODIFY,
    super::OID_STARTTLS,
];

impl Handler {
    pub(super) async fn search(
        &self,
        session: &mut Session,
        msgid: i32,
        req: LdapSearchRequest,
        ctrl: Vec<LdapControl>,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Outcome {
        let paging = ctrl.iter().find_map(|c| match c {
            LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie.clone())),
            _ => None,
        });
        // What a later page must repeat (RFC 2696 §3); only paged searches
        // pay for it.
        let fingerprint = if paging.is_some() {
            format!(
                "{:?}|{:?}|{:?}|{:?}|{}",
                req.base, req.scope, req.filter, req.attrs, req.typesonly
            )
        } else {
            String::new()
        };

        // A later page: continue from the saved state.
        if let Some((size, cookie)) = &paging {
            if !cookie.is_empty() {
                return self.next_page(session, msgid, &req, cookie, *size, fingerprint);
            }
        }

        let parsed = match session.inline_base.take() {
            Some(dn) => Ok(dn),
            None => session.bases.parse(&req.base),
        };
        let base = match parsed {
            Ok(dn) => dn,
            Err(_) => {
                return done(
                    msgid,
                    ldap_result(LdapResultCode::InvalidDNSyntax, "invalid base DN"),
                    None,
                )
            }
        };
        let filter = session.filters.convert(&req.filter);
        let scope = match req.scope {
            LdapSearchScope::Base => Scope::Base,
            LdapSearchScope::OneLevel => Scope::One,
            LdapSearchScope::Subtree => Scope::Sub,
            LdapSearchScope::Children => Scope::Children,
        };

        // The root DSE and the subschema entry: readable by anyone.
        if let Some(outcome) = self.special_entry(msgid, &base, scope, &filter, &req) {
            return outcome;
        }

        // A plain read of a cached group entry: its encoded body is kept
        // with the entry (per selection), so the response is a header and
        // those bytes. Requests with controls take the general path.
        if ctrl.is_empty() && scope == Scope::Base && reads_any_entry(&req.filter) {
            if let Some(outcome) = self.cached_group_read(session, msgid, &base, &req) {
                return outcome;
            }
        }

        let time_limit = effective_time_limit(req.timelimit, self.limits.time_limit);
        let query = SearchQuery {
            base,
            scope,
            filter,
            deadline: time_limit.map(|t| Instant::now() + t),
        };
        // Entries need only what the client selected (and what the filter
        // reads, which the directory adds).
        let requested = session.attr_lists.parse(&req.attrs);
        let wanted = requested.wanted();
        let size_limit = effective_size_limit(req.sizelimit, self.limits.size_limit);
        // A paged search keeps what its first page does not send, within
        // what the server-wide budget has room for now.
        let keep = paging.as_ref().map(|(size, _)| Keep {
            first: page_len((*size).max(1)),
            room: session.paging.room(),
        });
        let found = self
            .run_query(
                session, msgid, query, wanted, &requested, size_limit, &req, keep, stop,
            )
            .await;
        let (entries, code) = match found {
            Ok(Ok(Found::Held(Some(kept)))) => kept,
            Ok(Ok(Found::Held(None))) => return refuse_paged(session, msgid),
            Ok(Ok(Found::Stream(stream))) => return Outcome::streaming(stream),
            Ok(Ok(Found::Sent(out))) => return Outcome::sending(out),
            Ok(Err(e)) => return done(msgid, from_directory(&e), None),
            Err(e) => {
                tracing::error!(error = %e, "search task failed");
                return done(
                    msgid,
                    ldap_result(LdapResultCode::Other, "the search failed"),
                    None,
                );
            }
        };

        let answer = Answer {
            msgid,
            req: &req,
            requested: &requested,
        };
        self.answer(session, answer, entries, code, paging, fingerprint)
    }

    /// The answer of a paged search whose entries are found: its first
    /// page, or, when a limit ended it, every entry found and the result.
    fn answer(
        &self,
        session: &mut Session,
        answer: Answer<'_>,
        entries: Vec<Held>,
        code: LdapResultCode,
        paging: Option<(i64, Vec<u8>)>,
        fingerprint: String,
    ) -> Outcome {
        let msgid = answer.msgid;
        match paging {
            Some((size, _)) if size > 0 && code == LdapResultCode::Success => {
                self.page(session, answer, entries, size, fingerprint)
            }
            Some(_) if code == LdapResultCode::Success => {
                // Page size zero on a new search: nothing to send.
                done(msgid, success(), Some(Vec::new()))
            }
            _ => {
                let ctrl = paging.map(|_| paged_control(Vec::new()));
                let done = LdapMsg::new_with_ctrls(
                    msgid,
                    LdapOp::SearchResultDone(limit_result(code)),
                    ctrl.into_iter().collect(),
                );
                self.held_answer(answer, entries, done)
            }
        }
    }

    /// The held entries as encoded messages in batches of about
    /// [`STREAM_BATCH_BYTES`], then `done`.
    fn held_answer(&self, answer: Answer<'_>, entries: Vec<Held>, done: LdapMsg) -> Outcome {
        let mut out = Vec::with_capacity(2);
        if !entries.is_empty() {
            let wanted = answer.requested.wanted();
            let mut items = ItemWriter::new(answer.msgid, answer.req, answer.requested);
            let mut encoded = BytesMut::new();
            for held in entries {
                match held {
                    Held::Entry(e) => items.write(SearchItem::Entry(*e), &mut encoded),
                    Held::User(u) => self
                        .directory
                        .held_user(&u, &wanted, |user| items.write_user(user, &mut encoded)),
                    Held::Group(g) => items.write(SearchItem::Group(g), &mut encoded),
                }
                // In batches, as a streamed search sends them: the
                // connection's queue holds a few, so an abandon that comes
                // while a client is slow to read a large page stops what
                // is still to be queued, its result included.
                if encoded.len() >= STREAM_BATCH_BYTES {
                    out.push(Outgoing::Encoded(encoded.split().freeze()));
                }
            }
            if !encoded.is_empty() {
                out.push(Outgoing::Encoded(encoded.freeze()));
            }
        }
        out.push(done.into());
        Outcome::sending(out)
    }

    /// A later page of a paged search: the saved entries of `cookie`, if
    /// the request repeats the one that started it.
    fn next_page(
        &self,
        session: &mut Session,
        msgid: i32,
        req: &LdapSearchRequest,
        cookie: &[u8],
        size: i64,
        fingerprint: String,
    ) -> Outcome {
        let Some(mut state) = session.paging.take(cookie, Instant::now()) else {
            return done(
                msgid,
                ldap_result(
                    LdapResultCode::UnwillingToPerform,
                    "unknown or expired paged results cookie",
                ),
                None,
            );
        };
        if state.fingerprint != fingerprint {
            return done(
                msgid,
                ldap_result(
                    LdapResultCode::UnwillingToPerform,
                    "a paged search must repeat the original request",
                ),
                None,
            );
        }
        // RFC 2696 §3: a page size of zero abandons the search (dropping
        // the state gives its memory back).
        if size <= 0 {
            return done(msgid, success(), Some(Vec::new()));
        }
        let entries = state.next(page_len(size));
        let cookie = if state.is_done() {
            Vec::new()
        } else {
            session.paging.put_back(state, Instant::now())
        };
        // Sent by this connection before: kept parsed.
        let requested = session.attr_lists.parse(&req.attrs);
        let answer = Answer {
            msgid,
            req,
            requested: &requested,
        };
        self.page_answer(answer, entries, cookie)
    }

    /// The answer when `base` is the root DSE or the subschema entry.
    fn special_entry(
        &self,
        msgid: i32,
        base: &Dn,
        scope: Scope,
        filter: &Filter,
        req: &LdapSearchRequest,
    ) -> Option<Outcome> {
        let entry = match crate::directory::tree::classify(base, self.directory.base()) {
            Target::RootDse => root_dse(
                self.directory.base(),
                SUPPORTED_CONTROLS,
                SUPPORTED_EXTENSIONS,
                env!("CARGO_PKG_VERSION"),
            ),
            Target::Subschema => subschema_entry(),
            _ => return None,
        };
        if scope != Scope::Base {
            // RFC 4512 §5.1: the root DSE is found by a base search only,
            // and the subschema entry has no children.
            let res = if base.is_root() {
                LdapResult {
                    code: LdapResultCode::NoSuchObject,
                    matcheddn: String::new(),
                    message: "the root DSE is read with a base-scope search".into(),
                    referral: Vec::new(),
                }
            } else {
                success()
            };
            return Some(done(msgid, res, None));
        }
        let mut out = Vec::new();
        if filter.matches(&entry, &NoChain) {
            out.push(entry_msg(msgid, entry, req));
        }
        out.push(LdapMsg::new(msgid, LdapOp::SearchResultDone(success())));
        Some(Outcome::many(out))
    }

    /// A base read of a group entry the directory has cached, answered with
    /// the encoded body kept for this selection of attributes.
    fn cached_group_read(
        &self,
        session: &Session,
        msgid: i32,
        base: &Dn,
        req: &LdapSearchRequest,
    ) -> Option<Outcome> {
        let Ok(Some(CachedGroup { entry, derived })) =
            self.directory.cached_group_read(&session.identity, base)
        else {
            return None;
        };
        let key = selection_key(req);
        let op = match derived.get(&key) {
            Some(op) => op,
            None => {
                let op = entry_body(&entry, &Requested::parse(&req.attrs), req.typesonly);
                derived.insert(key, op.clone());
                op
            }
        };
        Some(Outcome::sending(vec![
            Outgoing::Entry { msgid, op },
            LdapMsg::new(msgid, LdapOp::SearchResultDone(success())).into(),
        ]))
    }

    /// Runs the query: a lookup by key here, anything that may scan on the
    /// blocking pool (off the reactor). Without `keep` (no paging) the
    /// entries are not kept, so they are encoded on the thread that built
    /// them.
    #[allow(clippy::too_many_arguments)]
    async fn run_query(
        &self,
        session: &Session,
        msgid: i32,
        query: SearchQuery,
        wanted: Wanted,
        requested: &Requested,
        size_limit: Option<usize>,
        req: &LdapSearchRequest,
        keep: Option<Keep>,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Result<Found, crate::directory::DirectoryError>, tokio::task::JoinError> {
        let encode_here = keep.is_none();
        // A lookup by key runs here, as the reader decided
        // ([`Handler::search_runs_inline`]): handing it to a blocking
        // thread and back costs more than the lookup (two wake-ups). Its
        // entries are written from their parts, as a streamed search's,
        // unless a page of them is to be kept.
        if session.on_reader && encode_here {
            let search = Encoded {
                msgid,
                req,
                requested,
                size_limit,
                batch: usize::MAX,
            };
            let mut out = Vec::with_capacity(2);
            let done = search.run(
                &self.directory,
                &session.identity,
                &query,
                &wanted,
                &|| stop.is_cancelled(),
                &mut |bytes| {
                    out.push(Outgoing::Encoded(bytes));
                    true
                },
            );
            if let Some(done) = done {
                out.push(LdapMsg::new(msgid, LdapOp::SearchResultDone(done)).into());
            }
            return Ok(Ok(Found::Sent(out)));
        }
        if let (true, Some(keep)) = (session.on_reader, keep) {
            return Ok(keep
                .run(
                    &self.directory,
                    &session.identity,
                    &query,
                    &wanted,
                    &|| stop.is_cancelled(),
                    size_limit,
                )
                .map(Found::Held));
        }
        let directory = self.directory.clone();
        let identity = session.identity.clone();
        let stop = stop.clone();
        // Without paging nothing keeps the entries: they are encoded on the
        // thread that builds them, which also frees them there (a free from
        // another thread costs the allocator more), and sent to the
        // connection in batches as they come, so a search over a million
        // users never holds its answer whole.
        let Some(keep) = keep else {
            let (tx, rx) = mpsc::channel(STREAM_BATCHES);
            let req = req.clone();
            let requested = requested.clone();
            tokio::task::spawn_blocking(move || {
                let search = Encoded {
                    msgid,
                    req: &req,
                    requested: &requested,
                    size_limit,
                    batch: STREAM_BATCH_BYTES,
                };
                let run = std::panic::AssertUnwindSafe(|| {
                    let done = search.run(
                        &directory,
                        &identity,
                        &query,
                        &wanted,
                        &|| stop.is_cancelled() || tx.is_closed(),
                        &mut |bytes| tx.blocking_send(Outgoing::Encoded(bytes)).is_ok(),
                    );
                    if let Some(done) = done {
                        let msg = LdapMsg::new(msgid, LdapOp::SearchResultDone(done));
                        let _ = tx.blocking_send(msg.into());
                    }
                });
                if std::panic::catch_unwind(run).is_err() {
                    // The client must not wait for a result that never
                    // comes.
                    let done = ldap_result(LdapResultCode::Other, "the search failed");
                    let _ = tx
                        .blocking_send(LdapMsg::new(msgid, LdapOp::SearchResultDone(done)).into());
                }
            });
            return Ok(Ok(Found::Stream(rx)));
        };
        tokio::task::spawn_blocking(move || {
            keep.run(
                &directory,
                &identity,
                &query,
                &wanted,
                &|| stop.is_cancelled(),
                size_limit,
            )
            .map(Found::Held)
        })
        .await
    }

    /// The first page of a paged search: up to `size` of `entries`; the
    /// rest is kept under a new cookie, or, when the server-wide budget for
    /// paged searches cannot hold it, the search is refused with
    /// adminLimitExceeded and nothing is kept.
    fn page(
        &self,
        session: &mut Session,
        answer: Answer<'_>,
        entries: Vec<Held>,
        size: i64,
        fingerprint: String,
    ) -> Outcome {
        let mut remaining: VecDeque<Held> = entries.into();
        let first: Vec<Held> = remaining
            .drain(..page_len(size).min(remaining.len()))
            .collect();
        let cookie = if remaining.is_empty() {
            Vec::new()
        } else {
            match session
                .paging
                .insert(fingerprint, remaining, Instant::now())
            {
                Ok(cookie) => cookie,
                Err(OverBudget) => return refuse_paged(session, answer.msgid),
            }
        };
        self.page_answer(answer, first, cookie)
    }

    /// One page: its entries, and the result with the cookie of the rest
    /// (empty on the last page).
    fn page_answer(&self, answer: Answer<'_>, entries: Vec<Held>, cookie: Vec<u8>) -> Outcome {
        let done = LdapMsg::new_with_ctrls(
            answer.msgid,
            LdapOp::SearchResultDone(success()),
            vec![paged_control(cookie)],
        );
        self.held_answer(answer, entries, done)
    }
}

/// What every answer to one search request needs: its message ID, the
/// request, and its attribute list as the search parsed it.
#[derive(Clone, Copy)]
struct Answer<'a> {
    msgid: i32,
    req: &'a LdapSearchRequest,
    requested: &'a Requested,
}

/// A paged search the server-wide budget cannot keep: refused with
/// adminLimitExceeded, nothing kept.
fn refuse_paged(session: &Session, msgid: i32) -> Outcome {
    crate::metrics::paged_refused();
    static FULL: crate::quiet::Every = crate::quiet::Every::new();
    if let Some(left_out) = FULL.line() {
        tracing::warn!(peer = %session.peer, left_out, "paged search refused: ldap.paged_results_max_bytes reached (left_out: others since the last line)");
    }
    done(
        msgid,
        ldap_result(
            LdapResultCode::AdminLimitExceeded,
            "too much is held by open paged searches on this server; \
             finish or abandon paged searches, or use a larger page size",
        ),
        None,
    )
}

/// Entries a page of `size` may carry (`size` > 0).
fn page_len(size: i64) -> usize {
    usize::try_from(size).unwrap_or(usize::MAX)
}

impl Handler {
    /// True for a search the connection's reader may run itself: a lookup
    /// by key ([`runs_inline`]), or a base-scope read of a user or of a
    /// group whose entry is cached ([`Directory::is_cached_base_read`]).
    ///
    /// [`Directory::is_cached_base_read`]: crate::directory::Directory::is_cached_base_read
    ///
    /// A base-scope search's base is parsed here (through the session's
    /// [`Session::bases`]) and left in `base` for the search
    /// ([`Session::inline_base`]), which then does not parse it again.
    pub(super) fn search_runs_inline(
        &self,
        session: &mut Session,
        req: &LdapSearchRequest,
        base: &mut Option<Arc<Dn>>,
    ) -> bool {
        // The base read first: it costs one classification, where a
        // membership filter may ask the store.
        if req.scope == LdapSearchScope::Base {
            if let Ok(dn) = session.bases.parse(&req.base) {
                let cached = self.directory.is_cached_base_read(&dn);
                *base = Some(dn);
                if cached {
                    return true;
                }
            }
        }
        runs_inline(req, &|attr, value| {
            self.directory.is_few_groups_lookup(attr, value)
        })
    }
}

/// True for a search the connection's reader may run itself: its filter
/// pins a unique attribute (uid, cn, mail, uidNumber, gidNumber) by
/// equality, names a member of a few cached groups (`few_groups`, the
/// directory's [`Directory::is_few_groups_lookup`]) or a type the schema
/// does not know, in an AND or in every term of an OR, so the directory
/// answers it from an index without a blocking thread.
///
/// [`Directory::is_few_groups_lookup`]: crate::directory::Directory::is_few_groups_lookup
pub(super) fn runs_inline(
    req: &LdapSearchRequest,
    few_groups: &dyn Fn(&str, &str) -> bool,
) -> bool {
    fn pins(f: &LdapFilter, few_groups: &dyn Fn(&str, &str) -> bool) -> bool {
        match f {
            LdapFilter::Equality(attr, value) => {
                match crate::directory::schema::attribute(attr).map(|t| t.name) {
                    // A type the schema does not know matches nothing.
                    None | Some("uid" | "cn" | "mail") => true,
                    Some(ty @ ("member" | "uniqueMember" | "memberUid" | "memberOf")) => {
                        few_groups(ty, value)
                    }
                    // A number that does not parse makes the item
                    // Undefined, and the search a scan.
                    Some("uidNumber" | "gidNumber") => value.trim().parse::<i64>().is_ok(),
                    _ => false,
                }
            }
            LdapFilter::And(items) => items.iter().any(|f| pins(f, few_groups)),
            LdapFilter::Or(items) => items.iter().all(|f| pins(f, few_groups)),
            _ => false,
        }
    }
    pins(&req.filter, few_groups)
}

fn paged_control(cookie: Vec<u8>) -> LdapControl {
    // The size in a response is an estimate of the total; 0 means unknown.
    LdapControl::SimplePagedResults { size: 0, cookie }
}

fn done(msgid: i32, res: LdapResult, paged_cookie: Option<Vec<u8>>) -> Outcome {
    let ctrl = paged_cookie.map(paged_control).into_iter().collect();
    Outcome::one(LdapMsg::new_with_ctrls(
        msgid,
        LdapOp::SearchResultDone(res),
        ctrl,
    ))
}

/// What a search found: its entries, or, when nothing but the answer
/// needs them, their encoded bodies and the result code.
enum Found {
    /// A paged search's entries, kept for its pages, and the result code
    /// of a limit that ended it; `None` when they would not fit the
    /// budget ([`Keep`]).
    Held(Option<(Vec<Held>, LdapResultCode)>),
    /// The entries' messages in batches, then the searchResultDone.
    Stream(mpsc::Receiver<Outgoing>),
    /// The entries' messages and the searchResultDone, encoded here.
    Sent(Vec<Outgoing>),
}

/// Encoded entries sent to the connection's writer at a time.
const STREAM_BATCH_BYTES: usize = 64 * 1024;
/// Batches in flight between a search's thread and the writer: a client
/// that reads slowly holds the search back, not the server's memory.
const STREAM_BATCHES: usize = 4;

/// A search whose entries are encoded as they are built, never built
/// whole where their parts can be written (users, cached groups).
struct Encoded<'a> {
    msgid: i32,
    req: &'a LdapSearchRequest,
    /// `req`'s attribute list, parsed.
    requested: &'a Requested,
    size_limit: Option<usize>,
    /// Bytes of entries handed on at a time.
    batch: usize,
}

impl Encoded<'_> {
    /// Runs the search on this thread, handing the encoded entries to
    /// `flush` in batches of at least `self.batch` bytes (and the rest at
    /// the end); the searchResultDone's result, or `None` once `flush` said
    /// the connection is gone (nothing more is sent then).
    fn run(
        &self,
        directory: &crate::directory::Directory,
        identity: &crate::directory::Identity,
        query: &SearchQuery,
        wanted: &Wanted,
        stopped: &(dyn Fn() -> bool + Sync),
        flush: &mut dyn FnMut(Bytes) -> bool,
    ) -> Option<LdapResult> {
        let mut encoded = BytesMut::new();
        let mut sent = 0;
        let mut over_size = false;
        let mut gone = false;
        let mut items = ItemWriter::new(self.msgid, self.req, self.requested);
        let result = directory.search_items(identity, query, wanted, &stopped, &mut |item| {
            if self.size_limit.is_some_and(|limit| sent >= limit) {
                over_size = true;
                return false;
            }
            sent += 1;
            items.write(item, &mut encoded);
            if encoded.len() >= self.batch && !flush(encoded.split().freeze()) {
                gone = true;
                return false;
            }
            true
        });
        if gone || (!encoded.is_empty() && !flush(encoded.freeze())) {
            return None;
        }
        Some(match result {
            Ok(_) if over_size => limit_result(LdapResultCode::SizeLimitExceeded),
            Ok(end) if end.time_limit_exceeded => limit_result(LdapResultCode::TimeLimitExceeded),
            Ok(_) => success(),
            Err(e) => from_directory(&e),
        })
    }
}

/// Writes the entries a search hands out as searchResultEntry messages:
/// built entries as they are, users from their parts, groups from the
/// body kept with their cached entry.
struct ItemWriter<'a> {
    msgid: i32,
    req: &'a LdapSearchRequest,
    requested: &'a Requested,
    users: UserWriter<'a>,
    /// A group's body is encoded once per selection and kept with its
    /// cached entry (as for a base read of it); the key is made at the
    /// first group, not for every lookup of a user.
    key: Option<String>,
}

impl<'a> ItemWriter<'a> {
    fn new(msgid: i32, req: &'a LdapSearchRequest, requested: &'a Requested) -> ItemWriter<'a> {
        ItemWriter {
            msgid,
            req,
            requested,
            users: UserWriter::new(requested, req.typesonly),
            key: None,
        }
    }

    fn write(&mut self, item: SearchItem<'_>, buf: &mut BytesMut) {
        match item {
            SearchItem::Entry(e) => {
                encode_entry(self.msgid, &e, self.requested, self.req.typesonly, buf)
            }
            SearchItem::User(user) => self.write_user(&user, buf),
            SearchItem::Group(CachedGroup { entry, derived }) => {
                let key = self.key.get_or_insert_with(|| selection_key(self.req));
                let op = derived.get(key).unwrap_or_else(|| {
                    let op = entry_body(&entry, self.requested, self.req.typesonly);
                    derived.insert(key.clone(), op.clone());
                    op
                });
                entry_header(self.msgid, op.len(), buf);
                buf.extend_from_slice(&op);
            }
        }
    }

    fn write_user(&mut self, user: &UserEntry<'_>, buf: &mut BytesMut) {
        self.users.write(self.msgid, user, buf);
    }
}

/// Writes a user's entry from its parts ([`UserEntry`]) as
/// [`encode_entry`] writes the built entry, without building it: the
/// attributes the request selects, in the entry's order, then entryDN when
/// it is asked for by name and not held. An enumeration of a million users
/// otherwise builds, copies and drops a million entries only to encode
/// them.
struct UserWriter<'a> {
    requested: &'a Requested,
    types_only: bool,
    /// The selected attributes of the entry being written, encoded.
    attrs: BytesMut,
    /// The types pushed for it so far; a type pushed twice has its entry
    /// built and encoded instead.
    pushed: Pushed,
}

impl<'a> UserWriter<'a> {
    fn new(requested: &'a Requested, types_only: bool) -> UserWriter<'a> {
        UserWriter {
            requested,
            types_only,
            attrs: BytesMut::new(),
            pushed: Pushed::default(),
        }
    }

    /// Appends the searchResultEntry message of `user` to `buf`.
    fn write(&mut self, msgid: i32, user: &UserEntry<'_>, buf: &mut BytesMut) {
        self.attrs.clear();
        self.pushed.clear();
        user.push_attrs(self);
        if self.pushed.repeated() {
            let e = user.build();
            encode_entry(msgid, &e, self.requested, self.types_only, buf);
            return;
        }
        if let Some(entry_dn) = self.requested.entry_dn() {
            if !self.pushed.has(entry_dn) {
                let dn = [user.dn()];
                let vals: &[&str] = if self.types_only { &[] } else { &dn };
                encode_attr(entry_dn.name, vals, &mut self.attrs);
            }
        }
        encode_entry_attrs_encoded(msgid, user.dn(), &self.attrs, buf);
    }
}

impl AttrSink for UserWriter<'_> {
    fn push(&mut self, ty: &'static AttributeType, values: &[&str]) {
        if self.pushed.first(ty, values) && self.requested.keeps(ty) {
            let vals: &[&str] = if self.types_only { &[] } else { values };
            encode_attr(ty.name, vals, &mut self.attrs);
        }
    }
}

/// What a paged search keeps beyond its first page, and what it may.
#[derive(Clone, Copy)]
struct Keep {
    /// Entries the first page sends (not kept).
    first: usize,
    /// Bytes the server-wide budget has room for now.
    room: usize,
}

impl Keep {
    /// Runs the search on this thread, keeping its entries (users as
    /// their shared records) and the result code of a size or time limit
    /// that ended it; `None` as soon as those beyond the first page pass
    /// `room` (the search is to be refused, and nothing more is read).
    /// Under a size limit the search ends there and is sent whole.
    fn run(
        self,
        directory: &crate::directory::Directory,
        identity: &crate::directory::Identity,
        query: &SearchQuery,
        wanted: &Wanted,
        stopped: &(dyn Fn() -> bool + Sync),
        size_limit: Option<usize>,
    ) -> Result<Option<(Vec<Held>, LdapResultCode)>, crate::directory::DirectoryError> {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let (mut over_size, mut over_budget) = (false, false);
        let end = directory.search_items(identity, query, wanted, stopped, &mut |item| {
            if size_limit.is_some_and(|limit| entries.len() >= limit) {
                over_size = true;
                return false;
            }
            let held = match item {
                SearchItem::Entry(e) => Held::Entry(Box::new(e)),
                SearchItem::User(user) => Held::User(user.hold()),
                SearchItem::Group(group) => Held::Group(group),
            };
            if entries.len() >= self.first && size_limit.is_none() {
                bytes += held.bytes();
                if bytes > self.room {
                    over_budget = true;
                    return false;
                }
            }
            entries.push(held);
            true
        })?;
        if over_budget {
            return Ok(None);
        }
        let code = if over_size {
            LdapResultCode::SizeLimitExceeded
        } else if end.time_limit_exceeded {
            LdapResultCode::TimeLimitExceeded
        } else {
            LdapResultCode::Success
        };
        Ok(Some((entries, code)))
    }
}

/// The searchResultDone result for a search that ended with `code`.
fn limit_result(code: LdapResultCode) -> LdapResult {
    let message = match code {
        LdapResultCode::SizeLimitExceeded => "size limit exceeded",
        LdapResultCode::TimeLimitExceeded => "time limit exceeded",
        _ => "",
    };
    ldap_result(code, message)
}

fn entry_msg(msgid: i32, entry: Entry, req: &LdapSearchRequest) -> LdapMsg {
    LdapMsg::new(msgid, LdapOp::SearchResultEntry(search_entry(entry, req)))
}

fn search_entry(entry: Entry, req: &LdapSearchRequest) -> LdapSearchResultEntry {
    search_entry_as(entry, &Requested::parse(&req.attrs), req.typesonly)
}

/// Appends the searchResultEntry message of `entry` with the attributes
/// `requested` selects, written straight from the entry (the same bytes
/// as encoding [`search_entry_as`]'s result, without building it).
fn encode_entry(
    msgid: i32,
    entry: &Entry,
    requested: &Requested,
    types_only: bool,
    buf: &mut BytesMut,
) {
    with_selected(entry, requested, types_only, |dn, attrs| {
        encode_entry_parts(msgid, dn, attrs, buf)
    })
}

/// The protocolOp of what [`encode_entry`] writes for `entry`: the body an
/// [`Outgoing::Entry`] sends under any message ID.
fn entry_body(entry: &Entry, requested: &Requested, types_only: bool) -> Bytes {
    with_selected(entry, requested, types_only, entry_op_parts)
}

/// Hands `write` the DN of `entry` and the attributes `requested` selects
/// of it, in the entry's order, entryDN last when asked for by name and
/// not held; without values for `types_only`.
fn with_selected<R>(
    entry: &Entry,
    requested: &Requested,
    types_only: bool,
    write: impl FnOnce(&str, &[AttrRef<'_, String>]) -> R,
) -> R {
    let dn = entry.dn.to_string();
    let (kept, entry_dn) = entry.selected_as(requested);
    let no_values: &[String] = &[];
    let dn_value = [dn];
    let values = |v| if types_only { no_values } else { v };
    let mut attrs: Vec<AttrRef<'_, String>> = kept
        .iter()
        .map(|&(atype, vals)| AttrRef {
            atype,
            vals: values(vals),
        })
        .collect();
    if let Some(atype) = entry_dn {
        attrs.push(AttrRef {
            atype,
            vals: values(&dn_value),
        });
    }
    write(&dn_value[0], &attrs)
}

fn search_entry_as(entry: Entry, requested: &Requested, types_only: bool) -> LdapSearchResultEntry {
    let dn = entry.dn.to_string();
    let attributes = entry
        .into_selected_as(requested, types_only)
        .into_iter()
        .map(|(atype, vals)| LdapPartialAttribute {
            atype,
            vals: vals.into_iter().map(String::into_bytes).collect(),
        })
        .collect();
    LdapSearchResultEntry { dn, attributes }
}

/// True for `(objectClass=*)`, which every entry matches.
fn reads_any_entry(filter: &LdapFilter) -> bool {
    matches!(filter, LdapFilter::Present(a)
        if crate::directory::schema::attribute(a).is_some_and(|t| t.name == "objectClass"))
}

/// What makes two reads of one entry send the same entry body: the
/// requested attributes, as sent (each prefixed with its length, so that
/// two lists never share a key), and typesOnly.
fn selection_key(req: &LdapSearchRequest) -> String {
    use std::fmt::Write;
    let mut key = String::from(if req.typesonly { "t" } else { "v" });
    for a in &req.attrs {
        let _ = write!(key, "{}:{a}", a.len());
    }
    key
}

/// The smaller of the client's and the server's size limits (0 = none).
fn effective_size_limit(client: i32, server: usize) -> Option<usize> {
    let client = usize::try_from(client).ok().filter(|&n| n > 0);
    let server = Some(server).filter(|&n| n > 0);
    match (client, server) {
        (Some(c), Some(s)) => Some(c.min(s)),
        (c, s) => c.or(s),
    }
}

/// The smaller of the client's and the server's time limits (0 = none).
fn effective_time_limit(client_secs: i32, server: Option<Duration>) -> Option<Duration> {
    let client = u64::try_from(client_secs)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_secs);
    match (client, server) {
        (Some(c), Some(s)) => Some(c.min(s)),
        (c, s) => c.or(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::MemberOfDn;

    #[test]
    fn entries_written_straight_are_the_bytes_of_the_built_message() {
        let dn = |s: &str| Dn::parse(s).expect("dn");
        let mut user = Entry::new(dn("cn=al\\, ice,ou=users,dc=example,dc=com"));
        user.push("objectClass", vec!["top".into(), "inetOrgPerson".into()]);
        user.push("cn", vec!["al, ice".into()]);
        user.push("mail", vec!["a@example.com".into()]);
        user.push("description", vec!["x".repeat(300), String::new()]);
        user.push(
            "entryUUID",
            vec!["0190b2c4-0000-7000-8000-000000000001".into()],
        );
        let mut group = Entry::new(dn("cn=devs,ou=groups,dc=example,dc=com"));
        group.push(
            "member",
            (0..500)
                .map(|i| format!("cn=user{i},ou=users,dc=example,dc=com"))
                .collect(),
        );
        let empty = Entry::new(dn("dc=example,dc=com"));
        let selections: [&[&str]; 9] = [
            &[],
            &["*"],
            &["+"],
            &["*", "+"],
            &["1.1"],
            &["CN", "mail", "entryDN"],
            &["entryDN"],
            &["member", "nosuchattr", "dn"],
            &["2.5.4.3", "objectclass"],
        ];
        for entry in [&user, &group, &empty] {
            for attrs in selections {
                let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
                let requested = Requested::parse(&attrs);
                for types_only in [false, true] {
                    for msgid in [1, 200, i32::MAX] {
                        let mut straight = BytesMut::new();
                        encode_entry(msgid, entry, &requested, types_only, &mut straight);
                        let built = search_entry_as(entry.clone(), &requested, types_only);
                        let mut expected = BytesMut::new();
                        super::super::codec::encode_msg(
                            LdapMsg::new(msgid, LdapOp::SearchResultEntry(built)),
                            &mut expected,
                        )
                        .expect("encode");
                        assert_eq!(straight, expected, "{} {attrs:?} {types_only}", entry.dn);
                    }
                }
            }
        }
    }

    #[test]
    fn users_written_from_their_parts_are_the_bytes_of_the_built_entry() {
        use crate::directory::entry::child_dn_string;
        use crate::store::{User, UserId};
        let base = Dn::parse("dc=example, DC=com").expect("dn");
        let users_ou = crate::directory::tree::users_ou(&base).to_string();
        let user = |name: &str, attrs: &[(&str, &str)]| User {
            id: UserId(uuid::Uuid::new_v4()),
            username: name.into(),
            full_name: Some("Alice Liddell".into()),
            email: Some("alice@example.com".into()),
            uid_number: 2001,
            gid_number: 2000,
            disabled: false,
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created: 1_700_000_000,
            modified: 1_700_000_100,
            pwd_changed: Some(1_700_000_050),
            cred_generation: 0,
        };
        let users = [
            user("alice", &[]),
            user(
                "al, ice",
                &[("loginShell", "/bin/zsh"), ("description", "x"), ("sn", "")],
            ),
            // One type under two of its names: the built entry merges them.
            user("bob", &[("description", "one"), ("2.5.4.13", "two")]),
            user(
                "carol",
                &[("homeDirectory", "/srv/carol"), ("entryDN", "cn=x")],
            ),
            // Never served, whatever a record holds.
            user("dave", &[("userPassword", "s3cret-value")]),
        ]
        .map(std::sync::Arc::new);
        let member_of = [
            MemberOfDn::for_test(&format!("cn=group001,ou=groups,{base}")),
            MemberOfDn::for_test(&format!(r"cn=team\, a,ou=groups,{base}")),
        ];
        let selections: [&[&str]; 10] = [
            &[],
            &["*"],
            &["+"],
            &["*", "+"],
            &["1.1"],
            &[
                "objectClass",
                "uid",
                "userPassword",
                "uidNumber",
                "gidNumber",
                "cn",
                "displayName",
                "homeDirectory",
                "loginShell",
                "memberOf",
            ],
            &["uid", "modifyTimestamp", "entryUUID", "ak-superuser"],
            &["entryDN"],
            &["description", "entryDN", "dn", "nosuchattr"],
            &["*", "entryDN", "memberOf"],
        ];
        for u in &users {
            let dn = child_dn_string(&u.username, &users_ou);
            for attrs in selections {
                let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
                let requested = Requested::parse(&attrs);
                let wanted = Wanted::selected(&attrs);
                for (member_of, superuser) in [(&member_of[..], true), (&[][..], false)] {
                    let parts = UserEntry::for_test(&base, &dn, u, member_of, superuser, &wanted);
                    for types_only in [false, true] {
                        let mut written = BytesMut::new();
                        let mut writer = UserWriter::new(&requested, types_only);
                        // Twice through one writer: nothing of an entry
                        // stays for the next.
                        writer.write(7, &parts, &mut written);
                        writer.write(8, &parts, &mut written);
                        let mut expected = BytesMut::new();
                        encode_entry(7, &parts.build(), &requested, types_only, &mut expected);
                        encode_entry(8, &parts.build(), &requested, types_only, &mut expected);
                        assert_eq!(written, expected, "{} {attrs:?} {types_only}", u.username);
                        assert!(!written.windows(12).any(|w| w == b"s3cret-value"));
                    }
                }
            }
        }
    }

    #[test]
    fn only_lookups_by_key_run_inline() {
        use ldap3_proto::proto::LdapDerefAliases;
        let req = |filter: LdapFilter| LdapSearchRequest {
            base: "dc=example,dc=com".into(),
            scope: LdapSearchScope::Subtree,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: Vec::new(),
        };
        let eq = |a: &str, v: &str| LdapFilter::Equality(a.into(), v.into());
        // A member of few cached groups (the directory says which).
        let few = |ty: &str, _: &str| ty == "member";
        let member = LdapFilter::And(vec![
            eq("objectClass", "groupOfNames"),
            eq("member", "cn=alice,ou=users,dc=example,dc=com"),
        ]);
        assert!(super::runs_inline(&req(member.clone()), &few));
        assert!(!super::runs_inline(&req(member), &|_, _| false));
        let runs_inline = |r: &LdapSearchRequest| super::runs_inline(r, &|_, _| false);
        assert!(runs_inline(&req(eq("uid", "alice"))));
        assert!(runs_inline(&req(eq("UIDNUMBER", " 2001 "))));
        assert!(runs_inline(&req(eq("2.5.4.3", "alice"))));
        assert!(runs_inline(&req(LdapFilter::And(vec![
            eq("objectClass", "person"),
            eq("mail", "a@example.com"),
        ]))));
        // Gitea's and Nextcloud's logins: every OR term pins, or names a
        // type the schema does not know (which matches nothing).
        assert!(runs_inline(&req(LdapFilter::And(vec![
            eq("objectClass", "posixAccount"),
            LdapFilter::Or(vec![eq("uid", "a"), eq("mail", "a@example.com")]),
        ]))));
        assert!(runs_inline(&req(LdapFilter::And(vec![
            LdapFilter::Or(vec![eq("objectclass", "inetOrgPerson")]),
            LdapFilter::Or(vec![
                eq("uid", "a"),
                LdapFilter::Or(vec![eq("mailPrimaryAddress", "a"), eq("mail", "a")]),
            ]),
        ]))));
        // Scans, or may scan: to the blocking pool.
        assert!(!runs_inline(&req(eq("uidNumber", "abc"))));
        assert!(!runs_inline(&req(eq("memberOf", "cn=x"))));
        assert!(!runs_inline(&req(LdapFilter::Or(vec![
            eq("uid", "a"),
            eq("objectClass", "person"),
        ]))));
        assert!(!runs_inline(&req(LdapFilter::Not(Box::new(eq(
            "uid", "a"
        ))))));
        assert!(!runs_inline(&req(LdapFilter::Present("uid".into()))));
    }

    #[test]
    fn limits_take_the_smaller() {
        assert_eq!(effective_size_limit(0, 0), None);
        assert_eq!(effective_size_limit(10, 0), Some(10));
        assert_eq!(effective_size_limit(0, 500), Some(500));
        assert_eq!(effective_size_limit(1000, 500), Some(500));
        assert_eq!(effective_size_limit(-1, 0), None);
        assert_eq!(
            effective_time_limit(5, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(effective_time_limit(0, None), None);
    }
}
