//! The LDAP protocol layer: listener, connection loop and operation
//! handlers. It turns `LdapMsg`s into calls on `directory` and `auth`, and
//! never touches the store's internals.
//!
//! Layout:
//! - `conn`: accept loop with a connection cap, and the per-connection loop
//!   (generic over the stream, so LDAPS and StartTLS can reuse it).
//! - `reactors`: the single-threaded runtimes connections are served on.
//! - `handler`: `Handler::handle(&mut Session, LdapMsg) -> Outcome`; no I/O.
//! - `bind`, `search`, `paging`, `compare`, `extended`, `write` (add,
//!   modify, delete, modify DN): one file per operation family.
//! - `result`: domain errors → LDAP result codes, in one place.
//! - `codec`: the wire codec with size and depth limits.
//! - `tls`: rustls configuration, certificates (generated or from files),
//!   reload on SIGHUP.

pub mod accept;
mod bind;
pub mod codec;
mod compare;
pub mod conn;
mod extended;
pub mod handler;
mod paging;
pub mod reactors;
mod result;
mod search;
pub mod tls;
mod write;

pub use conn::listen;
pub use handler::{Confidentiality, Handler, Outcome, Session};
pub use paging::PagedBudget;

/// RFC 2696 Simple Paged Results.
pub const OID_PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
/// RFC 4532 Who am I?
pub const OID_WHOAMI: &str = "1.3.6.1.4.1.4203.1.11.3";
/// RFC 3062 Password Modify.
pub const OID_PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";
/// RFC 4511 §4.4.1 Notice of Disconnection.
pub const OID_NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";
/// RFC 4511 §4.14 StartTLS.
pub const OID_STARTTLS: &str = "1.3.6.1.4.1.1466.20037";

#[cfg(test)]
mod tests;
