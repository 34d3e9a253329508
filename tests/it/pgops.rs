//! Operating one instance on PostgreSQL (issue 14): /healthz with the
//! database stopped and started again, TLS to the database through the
//! binary, the URL's password kept out of every message, and `url_file`.
//! Each test starts a cluster of its own (it stops it, or configures it
//! differently); skipped where PostgreSQL is not installed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis::store::postgres::testing::Cluster;

use crate::harness::*;
use crate::https::curl;
use crate::mfa::bind_rc;

/// Whether PostgreSQL is installed; if not, says the test is skipped.
fn installed() -> bool {
    Cluster::installed() || Cluster::shared().is_some()
}

/// Runs `portcullis serve` with `env`, which must fail to start; its
/// standard error. Killed (and the test failed) if it still runs after
/// a generous minute.
fn serve_must_fail(data: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--ldap-addr", "127.0.0.1:0"])
        .args(["--ldaps-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portcullis serve did not give up within a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn healthz_reports_the_database_and_never_hangs() {
    if !installed() {
        return;
    }
    // A cluster of this test's own: it is stopped below.
    let cluster = Cluster::start_own(&[], &[]);
    let s = Server::start_postgres(
        &cluster.url(&cluster.create_database()),
        FAST_HASH_ENV,
        None,
    );
    let healthz = |query: &str| {
        let (status, _, body) = curl(&[&format!("http://{}/healthz{query}", s.http_addr)]);
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        (status, body)
    };
    let up = serde_json::json!({"status": "ok", "store": "postgres", "database": "up"});
    assert_eq!(healthz(""), (200, up.clone()));
    assert_eq!(healthz("?strict").0, 200);

    cluster.stop();
    let asked = Instant::now();
    let degraded =
        serde_json::json!({"status": "degraded", "store": "postgres", "database": "unreachable"});
    // Degraded, not dead (the module documentation of src/http says why);
    // `?strict` asks for 503 instead.
    assert_eq!(healthz(""), (200, degraded.clone()));
    assert_eq!(healthz("?strict"), (503, degraded));
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "answered within the probe's deadline, not hung: {:?}",
        asked.elapsed()
    );

    // The database back: the instance reconnects by itself.
    cluster.start_again().expect("start the database again");
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthz("") != (200, up.clone()) {
        assert!(Instant::now() < deadline, "still not up: {:?}", healthz(""));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(bind_rc(&s, "admin", &s.admin_password), 0);
}

/// A cluster of the test's own that asks role `portcullis` for its
/// password (SCRAM), with a database it owns; the URL without the
/// password part (`postgres://portcullis:{password}@…` is the caller's).
fn cluster_with_passwords() -> (Cluster, String) {
    let hba = "local all all trust\n\
               host all postgres 127.0.0.1/32 trust\n\
               host all all 127.0.0.1/32 scram-sha-256\n";
    let cluster = Cluster::start_own(&[], &[("pg_hba.conf", hba.as_bytes())]);
    cluster.psql(
        "postgres",
        "CREATE ROLE portcullis LOGIN PASSWORD 'Right-Pa55word'",
    );
    let db = cluster.create_database();
    cluster.psql(
        "postgres",
        &format!("ALTER DATABASE {db} OWNER TO portcullis"),
    );
    let url = format!("127.0.0.1:{}/{db}", cluster.port());
    (cluster, url)
}

#[test]
fn the_urls_password_never_shows_in_errors() {
    if !installed() {
        return;
    }
    let (_cluster, at) = cluster_with_passwords();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            format!("postgres://portcullis:Wr0ng-Pa55word@{at}"),
            "Wr0ng-Pa55word",
            "password authentication failed for user \"portcullis\"",
        ),
        // Nothing listens on port 1: the connection is refused.
        (
            "postgres://portcullis:Secr3t-Pa55word@127.0.0.1:1/portcullis".into(),
            "Secr3t-Pa55word",
            "error connecting to server",
        ),
        // An unreadable URL is refused without being repeated either.
        (
            "postgres://portcullis:Secr3t-Pa55word@127.0.0.1:notaport/x".into(),
            "Secr3t-Pa55word",
            "invalid PostgreSQL URL",
        ),
    ];
    for (i, (url, password, why)) in cases.iter().enumerate() {
        let stderr = serve_must_fail(
            &tmp.path().join(i.to_string()),
            &[
                ("PORTCULLIS_STORE_BACKEND", "postgres"),
                ("PORTCULLIS_STORE_URL", url),
            ],
        );
        assert!(stderr.contains(why), "{stderr}");
        assert!(!stderr.contains(password), "{stderr}");
    }
}

#[test]
fn the_url_can_come_from_a_file() {
    if !installed() {
        return;
    }
    let (_cluster, at) = cluster_with_passwords();
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("db-url");
    std::fs::write(
        &file,
        format!("postgres://portcullis:Right-Pa55word@{at}\n"),
    )
    .expect("write");
    let file = file.to_str().expect("path");
    let s = Server::start_on_store(
        &[
            ("PORTCULLIS_STORE_BACKEND", "postgres"),
            ("PORTCULLIS_STORE_URL_FILE", file),
        ],
        FAST_HASH_ENV,
        None,
    );
    s.add_user("alice", "pw");
    assert_eq!(bind_rc(&s, "alice", "pw"), 0);
    // A second instance on the same file and key.
    let b = Server::start_on_store(
        &[
            ("PORTCULLIS_STORE_BACKEND", "postgres"),
            ("PORTCULLIS_STORE_URL_FILE", file),
        ],
        FAST_HASH_ENV,
        Some(&s),
    );
    assert_eq!(bind_rc(&b, "alice", "pw"), 0);
}

#[test]
fn tls_to_the_database_through_the_binary() {
    if !installed() {
        return;
    }
    let (cluster, root, wrong_root) = Cluster::start_tls();
    let db = cluster.create_database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = |root: &Path| {
        format!(
            "postgres://postgres@localhost:{}/{db}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
            cluster.port(),
            root.display()
        )
    };
    let s = Server::start_postgres(&url(&root), FAST_HASH_ENV, None);
    s.add_user("alice", "pw");
    assert_eq!(bind_rc(&s, "alice", "pw"), 0);
    let stderr = serve_must_fail(
        &tmp.path().join("b"),
        &[
            ("PORTCULLIS_STORE_BACKEND", "postgres"),
            ("PORTCULLIS_STORE_URL", &url(&wrong_root)),
        ],
    );
    assert!(
        stderr.contains("TLS handshake: invalid peer certificate: UnknownIssuer"),
        "{stderr}"
    );
}

#[test]
fn both_instances_recover_from_a_database_restart_under_load() {
    if !installed() {
        return;
    }
    let cluster = Cluster::start_own(&[], &[]);
    let servers = servers_on(&cluster.url(&cluster.create_database()), 2, FAST_HASH_ENV);
    servers[0].add_user("alice", "pw");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Binds through both instances all along, on new connections.
        let load: Vec<_> = servers
            .iter()
            .map(|s| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut answered = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let mut c = s.conn();
                        if c.simple_bind(&user_dn("alice"), "pw").is_ok() {
                            answered += 1;
                        }
                    }
                    answered
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        cluster.stop();
        std::thread::sleep(Duration::from_secs(1));
        cluster.start_again().expect("start the database again");
        // Both serve binds again by themselves, within a generous bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        for s in &servers {
            while bind_rc(s, "alice", "pw") != 0 {
                assert!(Instant::now() < deadline, "{} did not recover", s.url);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for handle in load {
            assert!(
                handle.join().expect("load thread") > 0,
                "answered under load"
            );
        }
    });
    // A write through one is seen by the other.
    servers[1].add_user("bob", "pw2");
    assert_eq!(bind_rc(&servers[0], "bob", "pw2"), 0);
}
