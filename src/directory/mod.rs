//! The directory: how store records look as LDAP entries.
//!
//! DN parsing (RFC 4514), the attribute schema, store records → entries
//! (DESIGN.md section 3), RFC 4515 filter evaluation with per-syntax
//! matching, access rules and the search planner that uses the store's
//! indexes. It knows nothing of sockets or BER, and changes nothing:
//! writes are decided in `account`, which uses this module to read.
//!
//! Layout:
//! - `dn`: parsing, normalising, escaping of distinguished names.
//! - `schema`: the attribute types and object classes served;
//!   `schema/attributes.rs` the attribute table, `schema/classes.rs` the
//!   object classes, `schema/matching.rs` syntaxes, matching rules and
//!   folding.
//! - `entry`: the `Entry` type and attribute selection; `entry/user.rs`
//!   and `entry/group.rs` map records → entries, `entry/fixed.rs` builds
//!   the base, the OUs, the root DSE and the subschema entry.
//! - `filter`: the `Filter` type; `filter/convert.rs` conversion from the
//!   wire form, `filter/matching.rs` matching by syntax.
//! - `tree`: where a DN points in the tree (`Target`).
//! - `search`: `Directory` and one search from scope to results;
//!   `search/access.rs` the access rules, `search/plan.rs` the index
//!   planner, `search/build.rs` entries built from records during a search.
//! - `admins`: who administers the directory (one rule for every layer).
//! - `cache`: memberships and names kept between searches, per membership
//!   epoch of the store.

pub mod admins;
mod cache;
pub mod dn;
pub mod entry;
pub mod filter;
pub mod schema;
pub mod search;
pub mod tree;

pub use dn::{Dn, DnError};
pub use entry::Entry;
pub use filter::{Filter, InChain};
pub use search::{
    Directory, DirectoryError, DirectoryOptions, HeldUser, Identity, MemberOfDn, Scope, SearchItem,
    SearchQuery, SearchResults, UserEntry, Warmed,
};
pub use tree::Target;
