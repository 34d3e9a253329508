//! The first start: the groups the server needs and an `admin` user with a
//! random password, shown once (DESIGN.md section 2).
//!
//! Runs before anything else touches a fresh store, both in `serve` and in
//! the CLI when it opens the store itself. Safe to repeat after a crash
//! midway: nothing is marked done until everything is. The server itself
//! acts here (`Actor::System`), under the same password rules as anyone.

use anyhow::Context;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::password;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::store::{now, Group, Member, NewUser, Store};

/// Settings key whose presence means the first start is done.
pub const BOOTSTRAPPED: &str = "bootstrapped";
/// The user created on the first start.
pub const ADMIN_USER: &str = "admin";

/// On a store that was never bootstrapped: creates the admin and search
/// groups (`ldap.admin_group`, `ldap.search_group`) if missing, creates user
/// `admin` ("Administrator") with a random password in the admin group,
/// writes the password to `<data_dir>/initial-admin-password` (mode 0600),
/// marks the store bootstrapped, flushes it, and returns the password so the
/// caller can print it once. Returns `None` on every later call.
pub fn bootstrap(
    store: &Store,
    hasher: &Hasher,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    if store
        .setting(BOOTSTRAPPED)
        .context("while reading the bootstrap marker")?
        .is_some()
    {
        return Ok(None);
    }
    let admins = ensure_group(
        store,
        &config.ldap.admin_group,
        "Administrators of the directory",
    )?;
    ensure_group(
        store,
        &config.ldap.search_group,
        "May read the whole directory over LDAP",
    )?;

    let admin = match store.user_by_name(ADMIN_USER)? {
        // Left by an earlier attempt that did not finish: give it a new
        // password, since the old one was never shown for certain.
        Some(user) => user,
        None => store
            .create_user(NewUser {
                username: ADMIN_USER.into(),
                full_name: Some("Administrator".into()),
                email: None,
            })
            .context("while creating the admin user")?,
    };
    let password = password::generate();
    // A generated password passes any policy (24 random alphanumerics).
    let phc = password::hash_blocking(
        hasher,
        &password::PasswordPolicy::default(),
        &password,
        &[ADMIN_USER],
    )
    .context("while hashing the admin password")?;
    store
        .set_password_hash(admin.id, &phc)
        .context("while storing the admin password")?;
    store
        .add_member(admins.id, Member::User(admin.id))
        .context("while adding admin to the admin group")?;

    let path = config.initial_password_path();
    write_secret_file(&path, &password)
        .with_context(|| format!("while writing {}", path.display()))?;

    store
        .set_setting(BOOTSTRAPPED, &now().to_string())
        .context("while marking the store bootstrapped")?;
    tracing::info!(path = %path.display(), "created user admin with a random password");
    Ok(Some(password))
}

fn ensure_group(store: &Store, name: &str, description: &str) -> anyhow::Result<Group> {
    if let Some(group) = store.group_by_name(name)? {
        return Ok(group);
    }
    store
        .create_group(name, Some(description.into()))
        .with_context(|| format!("while creating group {name}"))
}

/// Once the first admin's password changes (by the CLI, Password Modify or
/// an LDAP modify), the password written at the first start is no longer
/// the admin's: its file goes, so nobody reads a stale secret from disk.
/// Any other user, or no file, changes nothing. A failure to remove it is
/// logged, never a failure of the password change.
pub fn forget_initial_password(file: Option<&Path>, username: &str) {
    let Some(file) = file else { return };
    if !username.eq_ignore_ascii_case(ADMIN_USER) {
        return;
    }
    match std::fs::remove_file(file) {
        Ok(()) => {
            tracing::info!(path = %file.display(), "the admin's password changed; removed the initial password file")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %file.display(), error = %e, "could not remove the initial password file")
        }
    }
}

/// Writes `secret` and a newline to a new file readable by the owner only.
/// The file is created with mode 0600 (never wider, even briefly); an old
/// file is removed first, since opening it would keep its old mode, and
/// `create_new` refuses to follow a symlink planted in its place.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_file_is_private_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("initial-admin-password");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_secret_file(&path, "pw").expect("write secret");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "pw\n");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
