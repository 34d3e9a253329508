//! Listener and connection loop.
//!
//! `run` takes a semaphore permit before each accept and moves it into the
//! connection task, so at most `max_connections` are served; a connection
//! beyond that is closed at once. `serve_connection` is generic over the
//! stream so plain LDAP, LDAPS and StartTLS share it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ldap3_proto::proto::LdapResultCode;
use ldap3_proto::LdapCodec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::{notice_of_disconnection, Handler, Next, Session};

/// Accepts connections until `shutdown` is cancelled. Connection tasks are
/// spawned on `tracker`, so the caller can wait for them to drain.
pub async fn run(
    listener: TcpListener,
    handler: Arc<Handler>,
    max_connections: usize,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
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
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            serve_connection(stream, peer, handler, shutdown).await;
            drop(permit);
        });
    }
}

/// Serves one connection until the client leaves, breaks the protocol, or
/// the server shuts down. An operation in flight when shutdown starts is
/// finished and answered first.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    handler: Arc<Handler>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, LdapCodec::default());
    let mut session = Session::new(peer);
    tracing::debug!(%peer, "connection opened");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = framed
                    .send(notice_of_disconnection(LdapResultCode::Unavailable, "the server is shutting down"))
                    .await;
                break;
            }
            next = framed.next() => next,
        };
        let msg = match next {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                tracing::info!(%peer, error = %e, "malformed request; closing the connection");
                let _ = framed
                    .send(notice_of_disconnection(
                        LdapResultCode::ProtocolError,
                        "malformed request",
                    ))
                    .await;
                break;
            }
            None => break,
        };
        let outcome = handler.handle(&mut session, msg).await;
        let mut failed = false;
        for response in outcome.responses {
            if framed.feed(response).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed || framed.flush().await.is_err() || outcome.next == Next::Close {
            break;
        }
    }
    tracing::debug!(%peer, "connection closed");
}
