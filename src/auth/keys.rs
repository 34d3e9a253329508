//! The server key: 32 random bytes in `<data_dir>/server.key` (mode 0600),
//! created on first start, that keys the HMAC-SHA256 under which app
//! passwords and static tokens are stored.
//!
//! Those secrets are high-entropy, so a keyed hash is as safe as argon2 for
//! them and costs microseconds; keying it means a copy of the database alone
//! is not enough to test guesses offline. The key is loaded by `serve` and
//! by the CLI when it opens the store itself; the store never sees it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;

/// File name of the key inside the data directory.
pub const FILE_NAME: &str = "server.key";
const KEY_LEN: usize = 32;

/// The server's HMAC key. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKey([u8; KEY_LEN]);

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(********)")
    }
}

impl ServerKey {
    /// A fresh random key (tests, and the first start).
    pub fn generate() -> ServerKey {
        ServerKey(rand::random())
    }

    /// Reads `<data_dir>/server.key`, creating it (0600) if it does not
    /// exist. Creation is atomic (written to a temporary file, then linked
    /// into place), so two processes starting at once agree on one key.
    pub fn load_or_create(data_dir: &Path) -> io::Result<ServerKey> {
        let path = data_dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => return parse(&path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(data_dir)?;
        let key = ServerKey::generate();
        let tmp = data_dir.join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp)?;
            f.write_all(hex(&key.0).as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(key),
            // Another process won the race: use its key.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                parse(&path, &std::fs::read_to_string(&path)?)
            }
            Err(e) => Err(e),
        }
    }

    /// The key as the key file holds it (64 hex digits), for a backup
    /// written with `--with-secrets`.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses the key file's form (a restore reads it from a backup).
    pub fn from_hex(text: &str) -> io::Result<ServerKey> {
        parse(Path::new(FILE_NAME), text)
    }

    /// A fingerprint of the key (64 hex digits of a keyed hash of nothing):
    /// tells two keys apart without revealing either. A store shared by
    /// several instances records it (`Backend::check_key_fingerprint`).
    pub fn fingerprint(&self) -> String {
        hex(&self.keyed_hash("portcullis server key fingerprint", &[]))
    }

    /// HMAC-SHA256 of `data` under this key, with a domain label so a
    /// static token can never be mistaken for an app password.
    pub fn keyed_hash(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => return [0u8; 32],
        };
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

fn parse(path: &Path, text: &str) -> io::Result<ServerKey> {
    let text = text.trim();
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a server key (64 hex digits expected)",
                path.display()
            ),
        )
    };
    if text.len() != 2 * KEY_LEN || !text.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(ServerKey(key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ServerKey::load_or_create(dir.path()).expect("create");
        let b = ServerKey::load_or_create(dir.path()).expect("load");
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(format!("{a:?}"), "ServerKey(********)");
    }

    #[test]
    fn domains_separate_hashes() {
        let k = ServerKey::generate();
        assert_ne!(k.keyed_hash("a", b"x"), k.keyed_hash("b", b"x"));
        assert_eq!(k.keyed_hash("a", b"x"), k.keyed_hash("a", b"x"));
        assert_ne!(
            k.keyed_hash("a", b"x"),
            ServerKey::generate().keyed_hash("a", b"x")
        );
    }

    #[test]
    fn corrupt_key_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE_NAME), "nope").expect("write");
        assert!(ServerKey::load_or_create(dir.path()).is_err());
    }
}
