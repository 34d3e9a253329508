//! Portal sessions as the domain sees them: a signed-in browser, kept in
//! the store so it survives a restart (and, later, works across
//! instances). The store keys a session by the SHA-256 hash of its secret
//! id ([`SessionHash`]); the id itself lives only in the browser's
//! cookie, so a copy of the store yields no live session.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use super::{Timestamp, UserId};

/// Length of a [`SessionHash`].
pub const SESSION_HASH_LEN: usize = 32;
/// The SHA-256 hash of a session's secret id: the key the store keeps.
pub type SessionHash = [u8; SESSION_HASH_LEN];

/// Longest user agent kept with a session, in bytes (longer ones are cut
/// at a character boundary): it is shown, never trusted.
pub const MAX_USER_AGENT_LEN: usize = 256;
/// Longest address kept with a session, in bytes.
pub const MAX_ADDRESS_LEN: usize = 64;

/// A session's public handle: shown on the sessions page and named when
/// one is ended. Not a secret: it proves nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub Uuid);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One portal session. Its CSRF token is no credential by itself (a
/// request needs the session's cookie too), but it is still not shown in
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSession {
    pub id: SessionId,
    pub user: UserId,
    pub created: Timestamp,
    /// The last request made with it (kept to within a minute).
    pub last_seen: Timestamp,
    /// The client's address at sign-in.
    pub address: String,
    /// The browser's `User-Agent` at sign-in, cut to
    /// [`MAX_USER_AGENT_LEN`].
    pub user_agent: String,
    /// The token every state-changing request of this session carries.
    pub csrf: String,
    /// The password was right and a code is still due: the session signs
    /// nobody in until the code step replaces it with a new one.
    pub pending_code: bool,
}

impl fmt::Debug for PortalSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalSession")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("created", &self.created)
            .field("last_seen", &self.last_seen)
            .field("address", &self.address)
            .field("user_agent", &self.user_agent)
            .field("csrf", &"********")
            .field("pending_code", &self.pending_code)
            .finish()
    }
}

/// `text` cut to at most `max` bytes, at a character boundary, without
/// control characters.
pub fn bounded(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_at_a_character_boundary() {
        assert_eq!(bounded("abc", 2), "ab");
        assert_eq!(bounded("äö", 3), "ä");
        assert_eq!(bounded("a\nb", 10), "ab");
    }
}
