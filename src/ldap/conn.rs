//! Listeners and the connection loop.
//!
//! `listen` accepts on one listener (plain or LDAPS), on every reactor
//! (`accept.rs`). The connection cap is a semaphore shared by both
//! listeners and all reactors: a connection beyond it is closed at once. `serve_connection` is generic over the stream, so plain LDAP,
//! LDAPS and the stream after StartTLS share it.
//!
//! Per connection, operations run concurrently (RFC 4511 §4.1.1.1): the
//! reader decodes requests and spawns each search, compare or extended
//! operation as a task with its own `CancellationToken`, kept in a map by
//! message ID, so Abandon cancels by ID. Every response goes through one
//! writer over a bounded channel, carrying its own message ID. Bind waits
//! for the operations in progress before it runs (§4.2.1); StartTLS with
//! operations in progress, or on a TLS connection, is refused with
//! operationsError (§4.14.1); unbind cancels everything and closes. Beyond
//! `max_ops_per_connection` operations in progress a new request gets busy.
//! Timeouts: the TLS handshake, the first request, and idleness (no
//! request and nothing in progress).

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedResponse, LdapMsg, LdapOp, LdapResultCode,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{Encoder, FramedRead};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accept::{Accepting, Listener};
use super::codec::{self, Codec, Incoming, Outgoing, UnreadableBind};
use super::handler::{notice_of_disconnection, reject, Handler, Next, Outcome, Session};
use super::reactors::Reactors;
use super::result::{ldap_result, success};
use super::tls::Tls;
use crate::account::connections::LiveConnection;
use crate::metrics::{self, ConnectionGuard, Op};

/// Responses queued for the writer of one connection; an operation that
/// produces faster than the client reads waits (and stays abandonable).
const OUT_QUEUE: usize = 64;
/// Longest a write of queued responses may block on a client that does not
/// read before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pre-encoded entry bodies at least this long are written from where
/// they are cached instead of being copied into the output buffer.
const ZERO_COPY_BYTES: usize = 4096;

/// Limits of the connection loop (`[ldap]` settings).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_message_bytes: usize,
    pub max_ber_depth: usize,
    pub max_ops: usize,
    pub tls_handshake_timeout: Duration,
    pub first_message_timeout: Duration,
    /// None: idle connections stay open.
    pub idle_timeout: Option<Duration>,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_message_bytes: 256 * 1024,
            max_ber_depth: 32,
            max_ops: 32,
            tls_handshake_timeout: Duration::from_secs(10),
            first_message_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// What every connection shares.
pub struct ConnContext {
    pub handler: Arc<Handler>,
    pub limits: ConnLimits,
    /// LDAPS and StartTLS; `None` refuses StartTLS.
    pub tls: Option<Tls>,
    /// One permit per open connection, over both listeners.
    pub permits: Arc<Semaphore>,
    pub max_connections: usize,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// The threads connections are served on; `None`: the runtime that
    /// accepts them.
    pub reactors: Option<Arc<Reactors>>,
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// LDAP, with StartTLS.
    Plain,
    /// TLS from the first byte.
    Ldaps,
}

/// Registers `listener` with every reactor (with the current runtime when
/// there are none) and returns what accepts on it until shutdown; the
/// port closes when that is done. Connection tasks are spawned on the
/// context's tracker, so the caller can wait for them to drain then.
pub fn listen(
    listener: Listener,
    kind: ListenerKind,
    ctx: Arc<ConnContext>,
) -> io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let accepting: Vec<(Accepting, Option<usize>)> = match &ctx.reactors {
        None => vec![(listener.register(None)?, None)],
        Some(reactors) => (0..reactors.count())
            .map(|i| Ok((listener.register(Some(reactors.handle(i)))?, Some(i))))
            .collect::<io::Result<_>>()?,
    };
    Ok(async move {
        let loops: Vec<_> = accepting
            .into_iter()
            .map(|(fd, here)| {
                let task = accept_loop(fd, kind, here, ctx.clone());
                match (here, &ctx.reactors) {
                    (Some(i), Some(reactors)) => reactors.handle(i).spawn(task),
                    _ => tokio::spawn(task),
                }
            })
            .collect();
        for accepting in loops {
            let _ = accepting.await;
        }
    })
}

/// Accepts on one runtime (reactor `here`, or the runtime without
/// reactors) until shutdown.
async fn accept_loop(
    listener: Accepting,
    kind: ListenerKind,
    here: Option<usize>,
    ctx: Arc<ConnContext>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(10);
                pair
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = ctx.permits.clone().try_acquire_owned() else {
            static FULL: crate::quiet::Every = crate::quiet::Every::new();
            if let Some(left_out) = FULL.line() {
                tracing::warn!(%peer, max_connections = ctx.max_connections, left_out, "connection limit reached; closing (left_out: others since the last line)");
            }
            metrics::connection_refused();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let task_ctx = ctx.clone();
        // A connection's future is large (TLS state, codec, both loops):
        // made on the heap once, it is not copied again into the wrapper,
        // the tracker and the task (a copy per step showed in profiles).
        let serve = Box::pin(async move {
            // Registers the socket with the runtime that serves it.
            match TcpStream::from_std(stream) {
                Ok(stream) => serve_tcp(stream, peer, kind, task_ctx).await,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "could not register the connection; closing")
                }
            }
            drop(permit);
        });
        match (here, &ctx.reactors) {
            (Some(here), Some(reactors)) => {
                // Mostly this reactor: spawned locally, no thread woken.
                let (reactor, placement) = reactors.place_from(here);
                ctx.tracker.spawn_on(
                    async move {
                        serve.await;
                        drop(placement);
                    },
                    reactor,
                );
            }
            _ => {
                ctx.tracker.spawn(serve);
            }
        }
    }
}

async fn serve_tcp(stream: TcpStream, peer: SocketAddr, kind: ListenerKind, ctx: Arc<ConnContext>) {
    let _open = ConnectionGuard::open();
    match kind {
        ListenerKind::Plain => serve_connection(stream, peer, false, ctx).await,
        ListenerKind::Ldaps => {
            let Some(tls) = ctx.tls.clone() else {
                return;
            };
            let handshake = tls.acceptor().accept(stream);
            match tokio::time::timeout(ctx.limits.tls_handshake_timeout, handshake).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, true, ctx).await,
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Serves one connection until the client leaves, breaks the protocol, or
/// the server shuts down; `encrypted` for LDAPS. Operations in flight when
/// shutdown starts are finished and answered first.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    encrypted: bool,
    ctx: Arc<ConnContext>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = ctx.handler.session(peer);
    session.encrypted = encrypted;
    let mut conn = Conn {
        session,
        ops: HashMap::new(),
        first: true,
        live: ctx.handler.accounts.connections().open(peer, &ctx.shutdown),
        never_stopped: CancellationToken::new(),
    };
    tracing::debug!(%peer, encrypted, "connection opened");
    if let Exit::StartTls(stream) = drive(stream, &mut conn, &ctx).await {
        let Some(tls) = ctx.tls.clone() else {
            return;
        };
        let handshake = tls.acceptor().accept(stream);
        match tokio::time::timeout(ctx.limits.tls_handshake_timeout, handshake).await {
            Ok(Ok(stream)) => {
                conn.session.encrypted = true;
                tracing::debug!(%peer, "StartTLS established");
                // The same session goes on over TLS; it cannot upgrade again.
                let _ = drive(stream, &mut conn, &ctx).await;
            }
            Ok(Err(e)) => tracing::info!(%peer, error = %e, "StartTLS handshake failed"),
            Err(_) => tracing::info!(%peer, "StartTLS handshake timed out"),
        }
    }
    tracing::debug!(%peer, "connection closed");
}

/// State of one connection that outlives a StartTLS upgrade.
struct Conn {
    session: Session,
    /// Operations in progress, by message ID.
    ops: HashMap<i32, CancellationToken>,
    /// No request received yet.
    first: bool,
    /// This connection in the registry `session list|end` read; dropped
    /// (unregistered) with the connection.
    live: LiveConnection,
    /// Never cancelled: the stop of the operations the reader runs itself,
    /// which cannot be abandoned (one token, not one per operation).
    never_stopped: CancellationToken,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for token in self.ops.values() {
            token.cancel();
        }
    }
}

enum Exit<S> {
    Closed,
    /// StartTLS was accepted: the plain stream, to be wrapped in TLS.
    StartTls(S),
}

enum ReadExit {
    Closed,
    StartTls,
}

/// An operation task finished.
struct Done {
    msgid: i32,
    /// The handler asked to close the connection.
    close: bool,
}

/// Runs the reader and the writer of one stream until the connection ends
/// or StartTLS hands the stream back.
async fn drive<S>(stream: S, conn: &mut Conn, ctx: &ConnContext) -> Exit<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let codec = Codec::new(ctx.limits.max_message_bytes, ctx.limits.max_ber_depth);
    let mut reader = FramedRead::new(rd, codec);
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    // A failed write ends the connection through its end token, the one
    // token the reader waits on; this says why.
    let write_failed = AtomicBool::new(false);
    let ended = conn.live.ended();
    let read = async {
        let exit = read_loop(&mut reader, tx, conn, ctx, &ended, &write_failed).await;
        // Whatever is still running is abandoned, so its sender goes away
        // and the writer can finish.
        for token in conn.ops.values() {
            token.cancel();
        }
        exit
    };
    let writing = write_loop(wr, codec, rx, &write_failed, &ended);
    let (exit, writer) = tokio::join!(read, writing);
    match (exit, writer) {
        (ReadExit::StartTls, Some(writer)) => {
            // RFC 4511 §4.14.1: the client sends nothing more until the
            // handshake; bytes already here would be read as plain text.
            if !reader.read_buffer().is_empty() {
                tracing::info!(peer = %conn.session.peer, "data after StartTLS request; closing");
                return Exit::Closed;
            }
            Exit::StartTls(reader.into_inner().unsplit(writer))
        }
        _ => Exit::Closed,
    }
}

/// Writes responses in the order they arrive until every sender is gone.
/// Returns the stream for a StartTLS upgrade, or `None` after a failure.
async fn write_loop<W>(
    mut w: W,
    mut codec: Codec,
    mut rx: mpsc::Receiver<Outgoing>,
    failed: &AtomicBool,
    ended: &CancellationToken,
) -> Option<W>
where
    W: AsyncWrite + Unpin,
{
    let mut out = OutBuf::default();
    while let Some(msg) = rx.recv().await {
        out.push(&mut codec, msg);
        // Send what else is ready in one write.
        while let Ok(more) = rx.try_recv() {
            out.push(&mut codec, more);
        }
        let sent = async {
            out.write_to(&mut w).await?;
            w.flush().await
        };
        let mut sent = std::pin::pin!(sent);
        // Most writes go out at once: the timer (and the clock read that
        // sets it) only for one that has to wait for the client.
        let result = match futures::poll!(sent.as_mut()) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => tokio::time::timeout(WRITE_TIMEOUT, sent).await.ok(),
        };
        if !matches!(result, Some(Ok(()))) {
            failed.store(true, Ordering::Relaxed);
            ended.cancel();
            return None;
        }
    }
    Some(w)
}

/// Encoded responses waiting to be written: small ones are encoded into
/// one buffer, a pre-encoded entry body (a cached group of hundreds of
/// members is tens of kilobytes) is queued as it is and goes out in the
/// same vectored write without being copied.
#[derive(Default)]
struct OutBuf {
    scratch: BytesMut,
    chunks: VecDeque<Bytes>,
}

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;

impl OutBuf {
    fn push(&mut self, codec: &mut Codec, msg: Outgoing) {
        match msg {
            Outgoing::Entry { msgid, op } if op.len() >= ZERO_COPY_BYTES => {
                codec::entry_header(msgid, op.len(), &mut self.scratch);
                self.chunks.push_back(self.scratch.split().freeze());
                self.chunks.push_back(op);
            }
            Outgoing::Encoded(bytes) if bytes.len() >= ZERO_COPY_BYTES => {
                if !self.scratch.is_empty() {
                    self.chunks.push_back(self.scratch.split().freeze());
                }
                self.chunks.push_back(bytes);
            }
            msg => {
                // Cannot fail: encoding into memory.
                let _ = Encoder::<Outgoing>::encode(codec, msg, &mut self.scratch);
            }
        }
    }

    /// Writes everything queued, in order.
    async fn write_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        if !self.scratch.is_empty() {
            self.chunks.push_back(self.scratch.split().freeze());
        }
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slice, chunk) in slices.iter_mut().zip(&self.chunks) {
                *slice = IoSlice::new(chunk);
                count += 1;
            }
            let mut n = w.write_vectored(&slices[..count]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 {
                let first = self.chunks.front_mut().expect("written bytes were queued");
                if n >= first.len() {
                    n -= first.len();
                    self.chunks.pop_front();
                } else {
                    first.advance(n);
                    n = 0;
                }
            }
        }
        Ok(())
    }
}

async fn read_loop<R>(
    reader: &mut FramedRead<R, Codec>,
    tx: mpsc::Sender<Outgoing>,
    conn: &mut Conn,
    ctx: &ConnContext,
    ended: &CancellationToken,
    write_failed: &AtomicBool,
) -> ReadExit
where
    R: AsyncRead + Unpin,
{
    let peer = conn.session.peer;
    // `ended` (the connection's end token) stands for the server's
    // shutdown (its parent), `session end` or the portal, and a failed
    // write: each poll of a token takes two locks, and the loop's wait is
    // polled at least twice a request. Waited on across the loop's turns:
    // it registers with the token once.
    let stopped = ended.cancelled();
    tokio::pin!(stopped);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut pending_bind: Option<PendingBind> = None;
    let mut draining = false;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    // The connection is idle from the last thing that happened on it: a
    // request arrived, an operation or a bind ended (the clock is read
    // then, not on every turn of the loop).
    let mut idle_since = tokio::time::Instant::now();
    loop {
        if conn.ops.is_empty() {
            if draining {
                let _ = tx.send(Outgoing::from(shutting_down())).await;
                return ReadExit::Closed;
            }
            // RFC 4511 §4.2.1: a bind runs once nothing else is in progress.
            if let Some(next) = pending_bind.take() {
                // Boxed: the largest thing the loop awaits, and the loop's
                // future is as large as that (see `Handler::dispatch`).
                Box::pin(bind(next, conn, ctx, &tx)).await;
                conn.live.set_identity(&conn.session.identity);
                idle_since = tokio::time::Instant::now();
                continue;
            }
        }
        let wait = if !conn.ops.is_empty() || pending_bind.is_some() || draining {
            None
        } else if conn.first {
            Some(ctx.limits.first_message_timeout)
        } else {
            ctx.limits.idle_timeout
        };
        // One timer serves the whole connection: it is moved earlier when
        // it would go off too late, and later only when it goes off early,
        // not once per request.
        let deadline = wait.map(|t| idle_since + t);
        if let Some(deadline) = deadline {
            if timer.deadline() > deadline {
                timer.as_mut().reset(deadline);
            }
        }
        let reading = pending_bind.is_none() && !draining;
        let next = tokio::select! {
            // Once draining, operations in flight are finished (a write
            // that fails ends them) and the connection closes.
            _ = &mut stopped, if !draining => {
                if write_failed.load(Ordering::Relaxed) {
                    return ReadExit::Closed;
                }
                if ctx.shutdown.is_cancelled() {
                    draining = true;
                    continue;
                }
                tracing::info!(%peer, "connection ended by `session end` or the portal; closing");
                return ReadExit::Closed;
            }
            Some(done) = done_rx.recv() => {
                idle_since = tokio::time::Instant::now();
                conn.ops.remove(&done.msgid);
                if done.close {
                    return ReadExit::Closed;
                }
                continue;
            }
            _ = &mut timer, if deadline.is_some() => {
                match deadline {
                    Some(deadline) if deadline > tokio::time::Instant::now() => {
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                    _ => {
                        tracing::debug!(%peer, first = conn.first, "connection idle; closing");
                        return ReadExit::Closed;
                    }
                }
            }
            next = reader.next(), if reading => next,
        };
        let arrived = Instant::now();
        idle_since = tokio::time::Instant::from_std(arrived);
        let msg = match next {
            None => return ReadExit::Closed,
            Some(Err(e)) => {
                tracing::info!(%peer, error = %e, "malformed request; closing the connection");
                return malformed(&tx, &e).await;
            }
            Some(Ok(Incoming::Undecodable { msgid, op_tag })) => {
                conn.first = false;
                if let Some(exit) = undecodable(&tx, peer, msgid, op_tag).await {
                    return exit;
                }
                continue;
            }
            Some(Ok(Incoming::UnreadablePassword(req))) => {
                conn.first = false;
                pending_bind = Some(PendingBind::Unreadable(req));
                continue;
            }
            Some(Ok(Incoming::Msg(msg))) => msg,
        };
        conn.first = false;
        conn.live.touch();
        let msgid = msg.msgid;
        match &msg.op {
            // RFC 4511 §4.11: cancel, never answer.
            LdapOp::AbandonRequest(target) => {
                if let Some(token) = conn.ops.get(target) {
                    tracing::debug!(%peer, target, "abandon");
                    metrics::abandoned();
                    token.cancel();
                }
            }
            // RFC 4511 §4.3: outstanding operations are abandoned.
            LdapOp::UnbindRequest => return ReadExit::Closed,
            LdapOp::BindRequest(_) => pending_bind = Some(PendingBind::Msg(msg)),
            LdapOp::ExtendedRequest(req) if req.name == super::OID_STARTTLS => {
                if let Some(exit) = start_tls(msgid, conn, ctx, &tx).await {
                    return exit;
                }
            }
            _ => {
                if let Some(exit) = dispatch(msg, arrived, conn, ctx, &tx, &done_tx).await {
                    return exit;
                }
            }
        }
    }
}

/// The notice of disconnection sent when the server drains.
fn shutting_down() -> LdapMsg {
    notice_of_disconnection(LdapResultCode::Unavailable, "the server is shutting down")
}

/// A request that is not BER, not an LDAP message or not under a valid
/// message ID: the notice of disconnection (protocolError, RFC 4511
/// §4.1.1), and the end of the connection.
async fn malformed(tx: &mpsc::Sender<Outgoing>, e: &io::Error) -> ReadExit {
    metrics::protocol_error();
    let text = if e.to_string() == codec::INVALID_MESSAGE_ID {
        codec::INVALID_MESSAGE_ID
    } else {
        "malformed request"
    };
    let _ = tx
        .send(Outgoing::from(notice_of_disconnection(
            LdapResultCode::ProtocolError,
            text,
        )))
        .await;
    ReadExit::Closed
}

/// A request whose operation could not be decoded: answered with a
/// protocol error, ignored, or the end of the connection.
async fn undecodable(
    tx: &mpsc::Sender<Outgoing>,
    peer: std::net::SocketAddr,
    msgid: i32,
    op_tag: u64,
) -> Option<ReadExit> {
    tracing::info!(%peer, msgid, op_tag, "request not understood");
    match protocol_error_response(msgid, op_tag) {
        Answer::Respond(msg) => {
            if tx.send((*msg).into()).await.is_err() {
                return Some(ReadExit::Closed);
            }
        }
        Answer::Ignore => {}
        Answer::Close => {
            metrics::protocol_error();
            let _ = tx
                .send(Outgoing::from(notice_of_disconnection(
                    LdapResultCode::ProtocolError,
                    "unknown operation",
                )))
                .await;
            return Some(ReadExit::Closed);
        }
    }
    None
}

/// StartTLS (RFC 4511 §4.14): refused when TLS is up already, not
/// configured, or while operations are outstanding; otherwise answered
/// and the connection switches to TLS.
async fn start_tls(
    msgid: i32,
    conn: &Conn,
    ctx: &ConnContext,
    tx: &mpsc::Sender<Outgoing>,
) -> Option<ReadExit> {
    let refusal = if conn.session.encrypted {
        Some((
            LdapResultCode::OperationsError,
            "TLS is already established",
        ))
    } else if ctx.tls.is_none() {
        Some((LdapResultCode::ProtocolError, "StartTLS is not available"))
    } else if !conn.ops.is_empty() {
        Some((
            LdapResultCode::OperationsError,
            "operations are outstanding; StartTLS refused",
        ))
    } else {
        None
    };
    let (res, ok) = match refusal {
        Some((code, text)) => (ldap_result(code, text), false),
        None => (success(), true),
    };
    let response = LdapMsg::new(
        msgid,
        LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: Some(super::OID_STARTTLS.to_string()),
            value: None,
        }),
    );
    if tx.send(response.into()).await.is_err() {
        return Some(ReadExit::Closed);
    }
    ok.then_some(ReadExit::StartTls)
}

/// Any other request: refused when its message ID is in use or too many
/// operations are in flight; a quick search answered right here; anything
/// else a task of its own. `arrived`: when it was read (its time in the
/// metrics starts there).
async fn dispatch(
    msg: LdapMsg,
    arrived: Instant,
    conn: &mut Conn,
    ctx: &ConnContext,
    tx: &mpsc::Sender<Outgoing>,
    done_tx: &mpsc::UnboundedSender<Done>,
) -> Option<ReadExit> {
    let msgid = msg.msgid;
    let refusal = if conn.ops.contains_key(&msgid) {
        Some((
            LdapResultCode::ProtocolError,
            "message ID already in use by an operation in progress",
        ))
    } else if conn.ops.len() >= ctx.limits.max_ops {
        metrics::busy();
        Some((
            LdapResultCode::Busy,
            "too many operations in progress on this connection",
        ))
    } else {
        None
    };
    if let Some((code, text)) = refusal {
        if tx
            .send(reject(msgid, &msg.op, code, text).into())
            .await
            .is_err()
        {
            return Some(ReadExit::Closed);
        }
        return None;
    }
    // A lookup by key, or a base read of a user or of a cached group
    // entry, is answered right here: a task of its own costs more than the
    // lookup (a spawn and a thread wake-up per search). Nothing can be
    // abandoned in the microseconds it takes.
    if let LdapOp::SearchRequest(req) = &msg.op {
        let mut base = None;
        if ctx
            .handler
            .search_runs_inline(&mut conn.session, req, &mut base)
        {
            conn.session.on_reader = true;
            conn.session.inline_base = base;
            let outcome = ctx
                .handler
                .handle_until(&mut conn.session, msg, &conn.never_stopped)
                .await;
            conn.session.on_reader = false;
            conn.session.inline_base = None;
            let close = outcome.next == Next::Close;
            if !send_each(outcome, tx).await {
                return Some(ReadExit::Closed);
            }
            metrics::observe(Op::Search, arrived.elapsed());
            return close.then_some(ReadExit::Closed);
        }
    }
    let token = CancellationToken::new();
    conn.ops.insert(msgid, token.clone());
    spawn_op(
        msg,
        conn.session.clone(),
        ctx.handler.clone(),
        token,
        tx.clone(),
        done_tx.clone(),
    );
    None
}

/// Runs one operation as a task; its responses go to the writer unless it
/// is abandoned first.
fn spawn_op(
    msg: LdapMsg,
    mut session: Session,
    handler: Arc<Handler>,
    token: CancellationToken,
    tx: mpsc::Sender<Outgoing>,
    done: mpsc::UnboundedSender<Done>,
) {
    let msgid = msg.msgid;
    let kind = match &msg.op {
        LdapOp::SearchRequest(_) => Op::Search,
        LdapOp::CompareRequest(_) => Op::Compare,
        LdapOp::ExtendedRequest(_) => Op::Extended,
        _ => Op::Other,
    };
    tokio::spawn(async move {
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = handler.handle_until(&mut session, msg, &token) => Some(outcome),
            _ = token.cancelled() => None,
        };
        let mut close = false;
        if let Some(outcome) = outcome {
            close = outcome.next == Next::Close;
            send_all(outcome, &tx, &token).await;
        }
        metrics::observe(kind, started.elapsed());
        // The writer must not wait for this task's sender after it is done.
        drop(tx);
        let _ = done.send(Done { msgid, close });
    });
}

/// Sends an outcome's responses, then its stream as it comes, to the
/// writer; stops when `stop` is cancelled (Abandon: the rest is not worth
/// sending, and dropping the stream ends the search behind it). False when
/// the writer is gone.
async fn send_all(outcome: Outcome, tx: &mpsc::Sender<Outgoing>, stop: &CancellationToken) -> bool {
    // Abandoned: nothing more is sent, and the connection goes on.
    stop.run_until_cancelled(send_each(outcome, tx))
        .await
        .unwrap_or(true)
}

/// [`send_all`] without the token: the reader's own operations cannot be
/// abandoned, and watching a token cost locks on every send.
async fn send_each(outcome: Outcome, tx: &mpsc::Sender<Outgoing>) -> bool {
    let Outcome {
        responses, stream, ..
    } = outcome;
    // A slot first, then the response into it: `send` would hold the
    // response inside its future, which this one holds in turn.
    for response in responses {
        let Ok(slot) = tx.reserve().await else {
            return false;
        };
        slot.send(response);
    }
    let Some(mut stream) = stream else {
        return true;
    };
    while let Some(response) = stream.recv().await {
        let Ok(slot) = tx.reserve().await else {
            return false;
        };
        slot.send(response);
    }
    true
}

/// A bind, run by the reader itself once nothing else is in progress.
/// A bind waiting for the operations in progress to end (RFC 4511 §4.2.1).
enum PendingBind {
    Msg(LdapMsg),
    /// A simple bind whose password is not UTF-8.
    Unreadable(UnreadableBind),
}

async fn bind(next: PendingBind, conn: &mut Conn, ctx: &ConnContext, tx: &mpsc::Sender<Outgoing>) {
    let method = match &next {
        PendingBind::Msg(msg) => match &msg.op {
            LdapOp::BindRequest(req) => match &req.cred {
                LdapBindCred::Simple(pw) if req.dn.is_empty() && pw.is_empty() => "anonymous",
                LdapBindCred::Simple(_) => "simple",
                _ => "sasl",
            },
            _ => "other",
        },
        PendingBind::Unreadable(_) => "simple",
    };
    let started = Instant::now();
    let outcome = match next {
        PendingBind::Msg(msg) => ctx.handler.handle(&mut conn.session, msg).await,
        PendingBind::Unreadable(req) => ctx.handler.unreadable_bind(&mut conn.session, req).await,
    };
    metrics::observe(Op::Bind, started.elapsed());
    for response in outcome.responses {
        if let Outgoing::Msg(LdapMsg {
            op: LdapOp::BindResponse(LdapBindResponse { res, .. }),
            ..
        }) = &response
        {
            let result = match res.code {
                LdapResultCode::Success => "success",
                LdapResultCode::InvalidCredentials => "invalid_credentials",
                LdapResultCode::ConfidentialityRequired => "confidentiality_required",
                LdapResultCode::Busy => "busy",
                LdapResultCode::UnwillingToPerform => "unwilling",
                LdapResultCode::AuthMethodNotSupported => "method_not_supported",
                _ => "other",
            };
            if res.code == LdapResultCode::Busy {
                metrics::busy();
            }
            metrics::bind(method, result);
        }
        if tx.send(response).await.is_err() {
            return;
        }
    }
}

pub(crate) enum Answer {
    Respond(Box<LdapMsg>),
    Ignore,
    Close,
}

/// The answer to a well-formed request ldap3_proto could not decode,
/// by its APPLICATION tag (RFC 4511 §4.2–§4.12).
pub(crate) fn protocol_error_response(msgid: i32, op_tag: u64) -> Answer {
    let res = ldap_result(LdapResultCode::ProtocolError, "request not understood");
    let op = match op_tag {
        0 => LdapOp::BindResponse(LdapBindResponse {
            res,
            saslcreds: None,
        }),
        3 => LdapOp::SearchResultDone(res),
        6 => LdapOp::ModifyResponse(res),
        8 => LdapOp::AddResponse(res),
        10 => LdapOp::DelResponse(res),
        12 => LdapOp::ModifyDNResponse(res),
        14 => LdapOp::CompareResult(res),
        23 => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: None,
            value: None,
        }),
        // A malformed abandon: there is nothing to answer.
        16 => return Answer::Ignore,
        // A malformed unbind, a response, or no LDAP operation at all.
        _ => return Answer::Close,
    };
    Answer::Respond(Box::new(LdapMsg::new(msgid, op)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::{LdapPartialAttribute, LdapSearchResultEntry};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Takes at most `step` bytes per write, like a socket whose buffer is
    /// nearly full, so vectored writes end in the middle of a buffer.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.step - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn group(members: usize) -> LdapSearchResultEntry {
        LdapSearchResultEntry {
            dn: "cn=big,ou=groups,dc=example,dc=com".into(),
            attributes: vec![LdapPartialAttribute {
                atype: "member".into(),
                vals: (0..members)
                    .map(|i| format!("cn=user{i:05},ou=users,dc=example,dc=com").into_bytes())
                    .collect(),
            }],
        }
    }

    /// Pre-encoded bodies, large (written in place) and small (copied),
    /// between ordinary messages: the bytes on the wire are those of the
    /// codec, in order, however the writes are cut.
    #[tokio::test]
    async fn queued_responses_go_out_whole_and_in_order() {
        let big = group(300);
        let small = group(2);
        let big_op = codec::entry_op(&big);
        assert!(big_op.len() >= ZERO_COPY_BYTES);
        let done = |id| LdapMsg::new(id, LdapOp::SearchResultDone(success()));
        // Complete messages encoded beforehand, several per buffer.
        let encoded = |entry: &LdapSearchResultEntry, copies: i32| {
            let mut buf = BytesMut::new();
            for id in 1..=copies {
                let msg = LdapMsg::new(id, LdapOp::SearchResultEntry(entry.clone()));
                codec::encode_msg(msg, &mut buf).expect("encode");
            }
            buf.freeze()
        };
        let many_small = encoded(&small, 40);
        assert!(many_small.len() >= ZERO_COPY_BYTES);
        let queue = || {
            vec![
                Outgoing::Encoded(encoded(&small, 1)),
                Outgoing::Encoded(many_small.clone()),
                Outgoing::Entry {
                    msgid: 7,
                    op: big_op.clone(),
                },
                Outgoing::from(done(7)),
                Outgoing::Entry {
                    msgid: 300,
                    op: codec::entry_op(&small),
                },
                Outgoing::Entry {
                    msgid: 70_000,
                    op: big_op.clone(),
                },
                Outgoing::from(done(70_000)),
            ]
        };
        let mut codec = Codec::new(256 * 1024, 32);
        let mut expected = BytesMut::new();
        for msg in queue() {
            Encoder::<Outgoing>::encode(&mut codec, msg, &mut expected).expect("encode");
        }
        for step in [1, 7, 4096, 1 << 20] {
            let mut out = OutBuf::default();
            for msg in queue() {
                out.push(&mut codec, msg);
            }
            let mut w = Trickle {
                got: Vec::new(),
                step,
            };
            out.write_to(&mut w).await.expect("write");
            assert_eq!(w.got, &expected[..], "step {step}");
            assert!(out.chunks.is_empty() && out.scratch.is_empty());
        }
    }
}
