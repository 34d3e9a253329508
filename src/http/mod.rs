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
//!
//! # `/healthz`
//! A short JSON body: `{"status":"ok","store":"sled"}`, and with a
//! database (`[store] backend = "postgres"`) whether it answered a
//! bounded probe: `{"status":"ok","store":"postgres","database":"up"}`, or
//! `"status":"degraded"` with `"database":"unreachable"`. The probe runs
//! off the reactor and gives up after a deadline ([`Health`]), so
//! `/healthz` never hangs.
//!
//! The status code is 200 while the process serves, degraded or not: an
//! instance whose database is briefly unreachable keeps answering
//! searches from its read model and plain password binds, and when the
//! shared database is down for every instance, a load balancer that took
//! them all out would turn a partial outage into a full one. An operator
//! who prefers to drain an instance that lost its database asks
//! `/healthz?strict`, which answers 503 while degraded.
mod conn;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub use conn::{run, Front, HttpLimits};

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::domain::net::Cidr;

/// The client's address, put on every request as an extension: the TCP
/// peer, or the address a trusted proxy forwarded (port 0 then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Whether the client's request reached us over HTTPS (ours, or a trusted
/// proxy's), put on every request as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Https(pub bool);

/// The client of a request from `peer`, and whether a trusted proxy says
/// it spoke HTTPS. Forwarding headers count only when `peer` is a trusted
/// proxy: then the client is the right-most `X-Forwarded-For` address that
/// is not itself a trusted proxy (each proxy appends the address it saw,
/// so addresses left of it are the client's word). An unreadable entry
/// stops the walk at the last trusted hop.
pub fn forwarded(peer: SocketAddr, headers: &HeaderMap, trusted: &[Cidr]) -> (SocketAddr, bool) {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer.ip()) {
        return (peer, false);
    }
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer.ip();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    (SocketAddr::new(client, 0), https)
}

/// What `/healthz` reports (see the module documentation): the store
/// backend's name and, for a store with a database, how to ask whether
/// it answers.
#[derive(Clone)]
pub struct Health {
    store: &'static str,
    /// Blocking and bounded by itself; run off the reactor, under
    /// [`PROBE_DEADLINE`] too.
    database: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

/// The longest `/healthz` waits for the database probe.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(2);

impl Health {
    /// A store without a database to reach (sled, embedded).
    pub fn embedded(store: &'static str) -> Health {
        Health {
            store,
            database: None,
        }
    }

    /// A store whose database `probe` reaches (`true`: it answered).
    pub fn with_database(
        store: &'static str,
        probe: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Health {
        Health {
            store,
            database: Some(Arc::new(probe)),
        }
    }

    /// `None` without a database; else whether it answered in time.
    async fn database_up(&self) -> Option<bool> {
        let probe = self.database.clone()?;
        let answer =
            tokio::time::timeout(PROBE_DEADLINE, tokio::task::spawn_blocking(move || probe()))
                .await;
        Some(matches!(answer, Ok(Ok(true))))
    }
}

/// The listener's own routes.
pub fn router(health: Health) -> Router {
    Router::new().route("/metrics", get(metrics)).route(
        "/healthz",
        get(move |RawQuery(query): RawQuery| healthz(health.clone(), query)),
    )
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

/// The process is up and its listeners accept, and whether its database
/// answers (see the module documentation for the status code).
async fn healthz(health: Health, query: Option<String>) -> impl IntoResponse {
    let strict = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "strict" || p.starts_with("strict="))
    });
    let database = health.database_up().await;
    let degraded = database == Some(false);
    let mut body = serde_json::json!({
        "status": if degraded { "degraded" } else { "ok" },
        "store": health.store,
    });
    if let Some(up) = database {
        body["database"] = (if up { "up" } else { "unreachable" }).into();
    }
    let status = if degraded && strict {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, axum::Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        m
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let xff = h(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
        ]);
        // From a stranger: ignored.
        assert_eq!(forwarded(stranger, &xff, &trusted), (stranger, false));
        // From the proxy: believed.
        let (client, https) = forwarded(proxy, &xff, &trusted);
        assert_eq!(client.ip().to_string(), "198.51.100.7");
        assert!(https);
        // A client that forges the header gets it appended to by the proxy:
        // the right-most untrusted address wins, not the forged one.
        let chain = h(&[("x-forwarded-for", "1.1.1.1, 203.0.113.5, 10.1.2.3")]);
        let (client, https) = forwarded(proxy, &chain, &trusted);
        assert_eq!(client.ip().to_string(), "203.0.113.5");
        assert!(!https);
        // Several header lines read as one list; junk stops the walk.
        let lines = h(&[
            ("x-forwarded-for", "203.0.113.5"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        assert_eq!(
            forwarded(proxy, &lines, &trusted).0.ip().to_string(),
            "203.0.113.5"
        );
        let junk = h(&[("x-forwarded-for", "203.0.113.5, garbage")]);
        assert_eq!(forwarded(proxy, &junk, &trusted).0.ip(), proxy.ip());
        // No proxies configured: nothing is believed.
        assert_eq!(forwarded(proxy, &xff, &[]), (proxy, false));
    }
}
