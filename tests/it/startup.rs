//! Starting the server: failures stop it before it creates anything, and
//! say what went wrong without guessing.

use std::net::TcpListener;
use std::process::Command;

use crate::harness::BIN;

/// Runs `serve` to its end (it must fail) and answers its stderr.
fn serve_fails(data: &std::path::Path, ldap_addr: &str) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--ldap-addr", ldap_addr])
        .args(["--ldaps-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .output()
        .expect("run portcullis");
    assert!(!out.status.success(), "serve must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port in use stops the start before the store, the server key, the
/// admin user or the initial password exist: a second try on a free port
/// is a first start like any other.
#[test]
fn a_port_in_use_stops_the_start_before_anything_is_created() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let err = serve_fails(&data, &addr);
    assert!(err.contains("LDAP listener"), "{err}");
    assert!(!err.contains("another portcullis"), "{err}");
    for left in ["db", "server.key", "initial-admin-password"] {
        assert!(
            !data.join(left).exists(),
            "{left} was created before the port check"
        );
    }
}

/// A store that cannot be opened for a reason other than another process
/// holding it gets no hint about another portcullis.
#[test]
fn only_a_locked_store_suggests_another_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // The database directory is a file: opening fails, and nothing holds it.
    std::fs::write(data.join("db"), b"not a database").expect("file");
    let err = serve_fails(&data, "127.0.0.1:0");
    assert!(err.contains("while opening the store"), "{err}");
    assert!(!err.contains("another portcullis"), "{err}");
    assert!(!err.contains("in use by another process"), "{err}");
}

/// The password the first start wrote to `initial-admin-password` is no
/// secret worth keeping once the admin has another: the file goes when the
/// admin's password changes, whichever way (Password Modify, the CLI, an
/// LDAP modify), and stays while other users' passwords change.
#[test]
fn the_initial_password_file_goes_once_the_admin_changes_the_password() {
    use crate::harness::{tool, user_dn, Server};
    use ldap3::Mod;
    use std::collections::HashSet;

    // Password Modify (ldappasswd), the admin changing their own password.
    let s = Server::start();
    let file = s.data.join("initial-admin-password");
    assert!(file.exists(), "the first start writes the file");
    s.add_user("alice", "alice-pw-1");
    let out = s.cli_stdin(
        &["user", "passwd", "alice", "--password-stdin"],
        Some("alice-pw-2"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file.exists(), "another user's password leaves it");
    let (code, _, err) = tool(
        "ldappasswd",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("admin"),
            "-w",
            &s.admin_password,
            "-s",
            "a-new-admin-password",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!file.exists(), "Password Modify of the admin removes it");
    s.bound(&user_dn("admin"), "a-new-admin-password");

    // The CLI.
    let s = Server::start();
    let file = s.data.join("initial-admin-password");
    let out = s.cli_stdin(
        &["user", "passwd", "admin", "--password-stdin"],
        Some("another-one-2"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!file.exists(), "user passwd admin removes it");

    // An LDAP modify of the admin's userPassword.
    let s = Server::start();
    let file = s.data.join("initial-admin-password");
    let mut admin = s.admin();
    let values: HashSet<&str> = HashSet::from(["a-third-password-3"]);
    let res = admin
        .modify(
            &user_dn("admin"),
            vec![Mod::Replace("userPassword", values)],
        )
        .expect("modify");
    assert_eq!(res.rc, 0, "{}", res.text);
    assert!(
        !file.exists(),
        "an LDAP modify of the admin's password removes it"
    );
}

/// The process's "THP disabled" flag (`THP_enabled` in `/proc/PID/status`:
/// 0 when the process turned transparent huge pages off), or `None` on a
/// kernel that does not report it.
fn huge_pages_allowed(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim() != "0")
}

/// The server runs without transparent huge pages (the kernel zeroed
/// 2 MiB pages again and again under mimalloc's purges), unless the
/// allocator's own setting asks for them.
#[test]
fn the_server_runs_without_huge_pages_unless_the_allocator_is_told_otherwise() {
    let mut server = crate::harness::Server::start();
    let Some(allowed) = huge_pages_allowed(server.pid()) else {
        eprintln!("this kernel does not report THP_enabled; nothing to check");
        return;
    };
    assert!(!allowed, "huge pages are still allowed");
    server.stop();
    let mut env = crate::harness::FAST_HASH_ENV.to_vec();
    env.push(("MIMALLOC_ALLOW_THP", "1"));
    let mut told = crate::harness::Server::start_with(&env);
    assert_eq!(huge_pages_allowed(told.pid()), Some(true));
    told.stop();
}
