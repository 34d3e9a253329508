//! API tokens: random secrets for scripts that call the portal's JSON API
//! (`Authorization: Bearer`), never for an LDAP bind or the sign-in page.
//!
//! The shape of an app password with its own prefix ([`PREFIX`]) and its
//! own hashing domain, so a token given where an app password is expected
//! (or the other way round) matches nothing. The store keeps both kinds
//! alike ([`crate::domain::CredentialKind`]).

use super::app_password::{generate_with, has_shape};
use super::keys::ServerKey;
use crate::domain::KeyedHash;

/// Marks a Portcullis API token.
pub const PREFIX: &str = "pctk_";
const DOMAIN: &str = "portcullis api token v1";

/// A new secret.
pub fn generate() -> String {
    generate_with(PREFIX)
}

/// Whether `candidate` has the shape of an API token; anything else is not
/// looked up at all.
pub fn looks_like_api_token(candidate: &str) -> bool {
    has_shape(PREFIX, candidate)
}

/// The stored (and indexed) form of an API token.
pub fn hash(key: &ServerKey, secret: &str) -> KeyedHash {
    key.keyed_hash(DOMAIN, secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::app_password;

    #[test]
    fn tokens_are_not_app_passwords() {
        let t = generate();
        assert!(t.starts_with("pctk_"), "{t}");
        assert!(looks_like_api_token(&t));
        assert!(!app_password::looks_like_app_password(&t));
        let ap = app_password::generate();
        assert!(!looks_like_api_token(&ap));
        // The same text hashes apart in the two domains.
        let k = ServerKey::generate();
        assert_ne!(hash(&k, &t), app_password::hash(&k, &t));
    }
}
