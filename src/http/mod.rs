//! The HTTP listener (`portal.addr`): `/metrics` (Prometheus text format,
//! from [`crate::metrics`]) and `/healthz`; `serve` merges the portal's
//! routes (`crate::portal`) into [`router`] and hands the result to
//! [`run`]. Knows nothing of LDAP, the portal or the store.
//!
//! Each accepted connection is served here with hyper's HTTP/1 builder,
//! under limits of its own (`[portal]`): a connection cap (a semaphore
//! apart from LDAP's; beyond it a new connection is closed at once), a
//! deadline for a request's headers (which also bounds the wait for the
//! next request on a kept-alive connection), an idle deadline, a body cap
//! (413), and on shutdown a bounded drain after which connections are
//! dropped.
mod conn;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub use conn::{run, HttpLimits};

/// The client's address, put on every request as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// The listener's own routes.
pub fn router() -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

/// The process is up and its listeners accept: liveness and readiness.
async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
}
