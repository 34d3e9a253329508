//! Integration tests: the real server binary on loopback, real clients
//! (the `ldap3` crate and OpenLDAP's command-line tools).

mod harness;

mod bind;
mod cli;
mod mfa;
mod migrate;
mod ops;
mod search;
