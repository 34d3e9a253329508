//! The HTTP listener (`portal.addr`): `/metrics` (Prometheus text format,
//! from [`crate::metrics`]) and `/healthz`. The self-service portal will
//! join these routes later. Knows nothing of LDAP or the store's internals.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The routes served.
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

/// Serves until `shutdown` is cancelled.
pub async fn run(listener: TcpListener, shutdown: CancellationToken) {
    let served = axum::serve(listener, router())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}
