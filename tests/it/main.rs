//! Integration tests: the real server binary on loopback, real clients
//! (the `ldap3` crate and OpenLDAP's command-line tools).

mod harness;
mod raw;

mod backup;
mod bind;
mod bindcache;
mod browser;
mod cli;
mod clients;
mod corpus;
mod disclosure;
mod feed;
mod groupread;
mod hardening;
mod hashpool;
mod http;
mod https;
mod mfa;
mod migrate;
mod migratestore;
mod ops;
mod paged;
mod pgops;
mod policy;
mod portal;
mod recordcache;
mod restore;
mod scaleout;
mod search;
mod sessions;
mod soak;
mod startup;
mod tls;
mod write;
