//! Portcullis: an LDAP v3 directory server with MFA-aware bind.
//!
//! # Layout
//! - `domain`: the records every layer speaks (users, groups, devices, app
//!   passwords, policies, batches, ids) and the data-model rules; knows no
//!   backend and no protocol.
//! - `store`: the store interface (`Backend`, with its contract: durable
//!   on `Ok`, atomic change sets checked against what was read, codes
//!   consumed once, the membership epoch), the records it speaks, and its
//!   backends: `store::sled` (the embedded default, the only module that
//!   knows sled) and `store::postgres` (several instances on one
//!   PostgreSQL database; in progress, the only module that knows
//!   PostgreSQL). A conformance suite runs against every backend.
//! - `directory`: the read model: DNs, schema, records → entries, filters,
//!   access rules and the search planner. Knows nothing of sockets or BER
//!   and changes nothing.
//! - `account`: every rule about changing an account, written once: the
//!   acting party and what it may change, the password policy, the admin
//!   set and the last-enabled-admin guard, LDAP writes, password changes,
//!   users and groups, MFA enrolment, app passwords, policies, bootstrap;
//!   typed views of what it answers. `ldap`, `admin` and the portal call
//!   it for every change.
//! - `auth`: bind decisions: password hashing and verification off the
//!   reactor, credential parsing, TOTP and static tokens, app passwords,
//!   bind policies, throttling, the server key. Clock and randomness are
//!   parameters. Knows the store's interface, never sled; owns its
//!   settings types (`config` converts into them).
//! - `ldap`: the protocol layer: listener, connection loop, operation
//!   handlers (bind, search, compare, extended, root DSE, paging).
//! - `admin`: the admin requests the CLI sends, the Unix socket through
//!   which a running server takes them, and their dispatch to `account`.
//! - `config`: settings from file, environment and flags.
//! - `cli`: the command line (clap) and the commands behind it.
//! - `server`: `serve`: store, bootstrap, listeners, admin socket, shutdown.
//! - `ldif`: RFC 2849 LDIF reading (bounded) and writing; knows no schema.
//! - `migrate`: LDIF import (plan, then one all-or-nothing store batch),
//!   LDIF export of the served entries, JSON backup and restore.
//! - `backup`: scheduled backups (`[backup]`): the JSON backup with
//!   secrets from one snapshot, written atomically, the newest kept.
//! - `quiet`: warnings a flood repeats, at most one line a second with a
//!   count of the rest.
//! - `metrics`: process-wide counters and histograms (atomics), rendered in
//!   the Prometheus text format; knows no protocol.
//! - `fuzz`: entry points for the fuzz targets and the corpus replay test.
//! - `portal`: the self-service portal (pages and `/api/v1`): translates
//!   HTTP into calls on `account` and `auth`; never touches the store.
//! - `http`: the HTTP listener: `/metrics` and `/healthz` (the portal
//!   joins it), served per connection with its own cap, header and idle
//!   deadlines, body limit and bounded drain. Knows nothing of LDAP.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::panic, clippy::await_holding_lock)
)]

pub mod account;
pub mod admin;
pub mod auth;
pub mod backup;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod directory;
pub mod domain;
pub mod fuzz;
pub mod handoff;
pub mod http;
pub mod ldap;
pub mod ldif;
pub mod metrics;
pub mod migrate;
pub mod niceness;
pub mod portal;
pub mod quiet;
pub mod server;
pub mod store;
