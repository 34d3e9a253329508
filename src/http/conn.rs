//! The accept loop and one connection's life: the cap, the deadlines, the
//! body limit and the drain (see the module above). hyper parses HTTP;
//! this file only decides how long and how much.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::domain::net::Cidr;

/// The HTTP listener's limits (`[portal]` settings).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Deadline for a request's headers, and for the next request's on a
    /// kept-alive connection.
    pub header_timeout: Duration,
    /// A connection without a byte read or written this long is closed
    /// (None: never).
    pub idle_timeout: Option<Duration>,
    /// Largest request body; a larger one gets 413.
    pub max_body_bytes: usize,
    /// After shutdown, how long requests in flight may take to finish.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(60)),
            max_body_bytes: 1024 * 1024,
            drain: Duration::from_secs(5),
        }
    }
}

/// Serves `router` until `shutdown` is cancelled, then gives the
/// connections still open `limits.drain` to finish their requests and
/// drops the rest. Returns when every connection has ended, so the caller
/// may flush the store. Each request carries its client's address as a
/// [`super::Peer`] extension.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    front: Front,
    shutdown: CancellationToken,
) {
    serve(listener, router, limits, front, shutdown).await;
}

/// How the listener meets its clients: TLS or not, and which peers are
/// proxies whose forwarding headers are believed.
#[derive(Clone, Default)]
pub struct Front {
    /// HTTPS with this acceptor (`portal.tls`).
    pub tls: Option<TlsAcceptor>,
    /// `portal.trusted_proxies`.
    pub trusted_proxies: Arc<[Cidr]>,
}

/// [`run`] with the routes given.
async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    front: Front,
    shutdown: CancellationToken,
) {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    // Cancelled when the drain time is over: the connections left drop.
    let dropped = CancellationToken::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(10);
                pair
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            static FULL: crate::quiet::Every = crate::quiet::Every::new();
            if let Some(left_out) = FULL.line() {
                tracing::warn!(%peer, max_connections = limits.max_connections, left_out, "HTTP connection limit reached; closing (left_out: others since the last line)");
            }
            drop(stream);
            continue;
        };
        let ends = Ends {
            shutdown: shutdown.clone(),
            dropped: dropped.clone(),
        };
        let (router, limits, front) = (router.clone(), limits.clone(), front.clone());
        tracker.spawn(async move {
            let _ = stream.set_nodelay(true);
            match &front.tls {
                None => serve_connection(stream, peer, false, router, &limits, &front, ends).await,
                Some(acceptor) => {
                    // The handshake gets the time a request's headers get.
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(limits.header_timeout, handshake).await {
                        Ok(Ok(tls)) => {
                            serve_connection(tls, peer, true, router, &limits, &front, ends).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(limits.drain, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP requests still in flight after {:?}; dropping their connections",
            limits.drain
        );
        dropped.cancel();
        tracker.wait().await;
    }
}

/// The two ways a connection is told to end from outside.
struct Ends {
    /// Shutdown began: finish the request in flight, then close.
    shutdown: CancellationToken,
    /// The drain time is over: close now.
    dropped: CancellationToken,
}

/// Serves one connection until the client closes it, a deadline passes,
/// or shutdown ends it.
async fn serve_connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    https: bool,
    router: Router,
    limits: &HttpLimits,
    front: &Front,
    ends: Ends,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let max_body = limits.max_body_bytes;
    let trusted = front.trusted_proxies.clone();
    let service = hyper::service::service_fn(move |req| {
        answer(router.clone(), req, peer, https, trusted.clone(), max_body)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    // Idle periods in a row: the first closes gracefully (at once when no
    // request is in flight), the second drops a request that is stuck.
    let mut idle_strikes = 0;
    loop {
        let idle = async {
            match limits.idle_timeout {
                Some(limit) => tokio::time::sleep_until(activity.last() + limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = ends.shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ends.dropped.cancelled() => return,
            _ = idle => {
                let Some(limit) = limits.idle_timeout else { continue };
                if activity.last().elapsed() < limit {
                    idle_strikes = 0;
                    continue;
                }
                idle_strikes += 1;
                if idle_strikes > 1 {
                    tracing::debug!("HTTP connection idle; dropping it");
                    return;
                }
                // The second period starts now.
                activity.touch();
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Routes a request, unless its declared body is over the limit; a body
/// without a declared length is cut off at the limit as it is read.
async fn answer(
    router: Router,
    mut req: Request<Incoming>,
    peer: std::net::SocketAddr,
    https: bool,
    trusted: Arc<[Cidr]>,
    max_body: usize,
) -> Result<Response, Infallible> {
    let (client, forwarded_https) = super::forwarded(peer, req.headers(), &trusted);
    req.extensions_mut().insert(super::Peer(client));
    req.extensions_mut()
        .insert(super::Https(https || forwarded_https));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        // The body stays unread, so the connection cannot carry another
        // request: say so, and hyper closes it.
        return Ok((
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            "request body too large\n",
        )
            .into_response());
    }
    let req = req.map(|body| Body::new(Limited::new(body, max_body)));
    router.oneshot(req).await
}

/// When a connection last read or wrote a byte.
struct Activity {
    start: Instant,
    /// Milliseconds from `start`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A stream that notes in its [`Activity`] each read or write that moved
/// bytes.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A request whose handler never finishes does not hold shutdown up:
    /// after the drain time its connection is dropped and `serve` returns.
    #[tokio::test]
    async fn drain_drops_a_request_that_does_not_finish() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let started_tx = Arc::new(std::sync::Mutex::new(Some(started_tx)));
        let router = Router::new().route(
            "/stuck",
            get(move || {
                if let Some(tx) = started_tx.lock().expect("lock").take() {
                    let _ = tx.send(());
                }
                std::future::pending::<&'static str>()
            }),
        );
        let limits = HttpLimits {
            drain: Duration::from_millis(200),
            ..HttpLimits::default()
        };
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(serve(
            listener,
            router,
            limits,
            Front::default(),
            shutdown.clone(),
        ));

        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        started_rx.await.expect("the handler runs");
        shutdown.cancel();
        // Generous: the drain is 200 ms.
        tokio::time::timeout(Duration::from_secs(30), served)
            .await
            .expect("serve returns after the drain")
            .expect("serve task");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut rest))
            .await
            .expect("the connection is closed");
        assert!(read.is_err() || rest.is_empty(), "answered: {rest:?}");
    }
}
